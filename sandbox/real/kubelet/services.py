"""The cluster's Services and their ready endpoints, from a real API server, for the node's
service proxy (`serviceproxy`) and cluster DNS (`dns`).

A list-watch of Services and of EndpointSlices, as kube-proxy's informers have them
(cmd/kube-proxy/app/server.go `Run`: a Service informer and an EndpointSlice informer, each
relisting after a lost watch). An endpoint counts when its `conditions.ready` is true or
unset (pkg/proxy/endpointslicecache.go `addEndpoints`: `Ready: endpoint.Conditions.Ready ==
nil || *endpoint.Conditions.Ready`); a slice belongs to the Service named by its
`kubernetes.io/service-name` label. Listeners are called (from the watch threads) after every
change, with no argument: they read `snapshot()`."""

from __future__ import annotations

import dataclasses
import http.client
import threading

from .client import ApiStatus, NodeClient

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclasses.dataclass(frozen=True)
class ServicePort:
    namespace: str
    service: str
    name: str  # the port's name ("" for a single unnamed port)
    protocol: str  # TCP, UDP, SCTP
    cluster_ip: str  # "None" for a headless Service
    port: int
    endpoints: tuple[tuple[str, int], ...]  # ready (address, port), sorted

    @property
    def label(self) -> str:
        """`<ns>/<svc>:<port name>` as kube-proxy's rule comments name a service port."""
        return f"{self.namespace}/{self.service}:{self.name}"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    ports: tuple[ServicePort, ...]
    # (namespace, name) → cluster IP ("None" when headless) and the ready endpoint addresses
    services: dict


class ClusterServices:
    RESOURCES = {"services": "/api/v1/services",
                 "endpointslices": "/apis/discovery.k8s.io/v1/endpointslices"}

    def __init__(self, client: NodeClient):
        self.client = client
        self._lock = threading.Lock()
        self._objects: dict[str, dict[tuple[str, str], dict]] = {r: {} for r in self.RESOURCES}
        self._listeners: list = []
        self._closed = threading.Event()
        self._conns: dict[str, object] = {}
        self._threads = [threading.Thread(target=self._run, args=(r,), daemon=True,
                                          name=f"cluster-{r}") for r in self.RESOURCES]

    def add_listener(self, listener) -> None:
        self._listeners.append(listener)

    def start(self) -> "ClusterServices":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._closed.set()
        for conn in list(self._conns.values()):
            sock = getattr(conn, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(2)
                except OSError:
                    pass
        for t in self._threads:
            t.join(10)

    def snapshot(self) -> Snapshot:
        with self._lock:
            services = list(self._objects["services"].values())
            slices = list(self._objects["endpointslices"].values())
        by_service: dict[tuple[str, str], list[dict]] = {}
        for s in slices:
            owner = (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
            if owner and s.get("addressType", "IPv4") == "IPv4":
                by_service.setdefault((s["metadata"]["namespace"], owner), []).append(s)
        ports, named = [], {}
        for svc in services:
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            spec = svc.get("spec") or {}
            cluster_ip = spec.get("clusterIP") or ""
            if spec.get("type") == "ExternalName" or not cluster_ip:
                continue
            addresses = set()
            for sp in spec.get("ports") or []:
                proto = sp.get("protocol", "TCP")
                eps = set()
                for s in by_service.get((ns, name), []):
                    port = next((p.get("port") for p in s.get("ports") or []
                                 if (p.get("name") or "") == (sp.get("name") or "")
                                 and p.get("protocol", "TCP") == proto), None)
                    for ep in s.get("endpoints") or []:
                        if (ep.get("conditions") or {}).get("ready") is False:
                            continue
                        for address in ep.get("addresses") or []:
                            addresses.add(address)
                            if port is not None:
                                eps.add((address, int(port)))
                ports.append(ServicePort(ns, name, sp.get("name") or "", proto, cluster_ip,
                                         int(sp["port"]), tuple(sorted(eps))))
            if not spec.get("ports"):  # a headless Service without ports still has DNS
                for s in by_service.get((ns, name), []):
                    for ep in s.get("endpoints") or []:
                        if (ep.get("conditions") or {}).get("ready") is not False:
                            addresses.update(ep.get("addresses") or [])
            named[(ns, name)] = (cluster_ip, tuple(sorted(addresses)))
        return Snapshot(tuple(sorted(ports, key=lambda p: (p.namespace, p.service, p.name,
                                                            p.protocol))), named)

    # -- list and watch
    def _run(self, resource: str) -> None:
        base = self.RESOURCES[resource]
        rv = None
        while not self._closed.is_set():
            try:
                if rv is None:
                    listed = self.client.request("GET", base)
                    with self._lock:
                        self._objects[resource] = {_key(o): o for o in listed.get("items") or []}
                    rv = listed["metadata"]["resourceVersion"]
                    self._changed()
                conn, events = self.client.watch(
                    f"{base}?watch=1&allowWatchBookmarks=true&resourceVersion={rv}"
                    f"&timeoutSeconds=240")
                self._conns[resource] = conn
                for ev in events:
                    if ev["type"] == "ERROR":
                        rv = None  # 410 Gone: list again
                        break
                    obj = ev["object"]
                    rv = obj["metadata"].get("resourceVersion", rv)
                    if ev["type"] == "BOOKMARK":
                        continue
                    with self._lock:
                        if ev["type"] == "DELETED":
                            self._objects[resource].pop(_key(obj), None)
                        else:
                            self._objects[resource][_key(obj)] = obj
                    self._changed()
            except (OSError, http.client.HTTPException, ApiStatus, ValueError, KeyError):
                if self._closed.wait(1.0):
                    return
                rv = None

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()


def _key(obj: dict) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
