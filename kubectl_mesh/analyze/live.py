"""`analyze --live`: what only the proxies know, as messages beside istioctl's.

For the analyzed namespace(s), the selected proxies are its sidecars and the gateway pods its
VirtualServices bind to. From each proxy's Envoy (the routes and clusters of its config dump,
read as `describe` reads them: kubectl_mesh/describe/live.py) and from istiod's syncz:

- MESH0001 (Warning) an applied VirtualService or DestinationRule that a proxy it applies to
  does not carry yet: no route of the proxy names the VirtualService, or the proxy's cluster
  for the rule's host has no DestinationRule (istiod stamps both with the object in
  `filter_metadata.istio.config`: pilot/pkg/networking/util/util.go BuildConfigInfoMetadata);
- MESH0002 (Error) a proxy whose latest push of an xDS type was rejected (NACKed), with
  Envoy's error text (syncz `lastError`, pilot/pkg/xds/debug.go);
- MESH0003 (Error) / MESH0004 (Warning) the gateways' `routes --check` findings
  (kubectl_mesh/trace/check.py: routes to clusters that do not exist, shadowed routes,
  clusters without a healthy endpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.analyzers import hosts
from kubectl_mesh.analyze.analyzers.virtualservice import MESH_GATEWAY
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Resource, Store, as_dict, as_list, strings

ROUTE_SECTIONS = ("routes", "clusters")


@dataclass
class Proxy:
    """One selected proxy: its pod, its config dump (None when unreadable) and the
    store's Pod object (the origin of messages about it)."""

    pod: object
    resource: Optional[Resource]
    dump: object = None
    error: Optional[str] = None

    @property
    def ref(self) -> str:
        return self.pod.ref


def analyze(session, store: Store, namespace: Optional[str], istio_namespace: str,
            revision: Optional[str], warn: Callable[[str], None]) -> list[Message]:
    from kubectl_mesh.errors import MeshError
    from kubectl_mesh.kube.targets import list_proxies

    try:
        sidecars = [p for p in list_proxies(session.api, namespace) if p.proxy_type != "router"]
    except MeshError as e:
        warn(f"warning: cannot list the proxies' pods ({e}); --live adds nothing")
        return []
    gateways = _gateway_pods(session, store, namespace)
    proxies = {p.ref: Proxy(p, store.get("Pod", p.namespace, p.name))
               for p in sidecars + gateways}
    _read_dumps(session, list(proxies.values()))
    for proxy in proxies.values():
        if proxy.error is not None:
            warn(f"warning: cannot read the config of proxy {proxy.ref}: {proxy.error}; "
                 f"--live skips it")
    messages = list(_not_carried(store, namespace, proxies))
    messages += _nacks(session, proxies, istio_namespace, revision, warn)
    messages += _route_findings(store, [proxies[p.ref] for p in gateways])
    return messages


def _in_scope(res: Resource, namespace: Optional[str]) -> bool:
    """An applied object (read from the cluster, not a file) of the analyzed namespace."""
    return res.source is None and (namespace is None or res.namespace == namespace)


def _gateway_of(store: Store, vs: Resource, name: str) -> Optional[Resource]:
    ns, _, short = name.rpartition("/")
    return store.get("Gateway", ns or vs.namespace, short)


def _gateway_pods(session, store: Store, namespace: Optional[str]) -> list:
    """The running gateway pods that the analyzed VirtualServices' Gateways select."""
    from kubectl_mesh.kube.pods import Pod

    selectors = []
    for vs in store.of("VirtualService"):
        if not _in_scope(vs, namespace):
            continue
        for name in strings(vs.spec.get("gateways")):
            gateway = _gateway_of(store, vs, name) if name != MESH_GATEWAY else None
            if gateway is not None:
                selector = {str(k): str(v) for k, v in
                            as_dict(gateway.spec.get("selector")).items()}
                if selector and selector not in selectors:
                    selectors.append(selector)
    pods = {}
    for res in store.of("Pod"):
        if any(all(res.labels.get(k) == v for k, v in s.items()) for s in selectors):
            pod = Pod.from_json(res.obj)
            if pod.phase == "Running" and pod.has_proxy and not pod.terminating:
                pods[pod.ref] = pod
    return [pods[ref] for ref in sorted(pods)]


def _read_dumps(session, proxies: list[Proxy]) -> None:
    """Each proxy's routes and clusters (two masked /config_dump requests, as Envoy applies
    one mask to every section), in parallel; an unreachable proxy is its `error`."""
    from kubectl_mesh.configdump import ConfigDump
    from kubectl_mesh.errors import MeshError
    from kubectl_mesh.proxyconfig.views import MASKS
    from kubectl_mesh.session import for_each

    def read(proxy: Proxy):
        with session.admin(proxy.pod) as admin:
            configs = [c for section in ROUTE_SECTIONS for c in admin.config_dump(
                mask=MASKS[section]).get("configs", [])]
        return ConfigDump({"configs": configs}, proxy.ref)

    for proxy, dump, error in for_each(proxies, read, concurrency=4, label="proxies"):
        if error is None:
            proxy.dump = dump
        elif isinstance(error, MeshError):
            proxy.error = str(error)
        else:
            raise error


def _proxy_config(proxy: Proxy):
    from kubectl_mesh.describe.live import ProxyConfig

    return ProxyConfig(proxy.ref, routes=proxy.dump.routes, clusters=proxy.dump.clusters)


def _not_carried(store: Store, namespace: Optional[str], proxies: dict[str, Proxy]):
    services = hosts.ServiceHosts(store.of("ServiceEntry"), store.of("Service"))
    readable = [p for p in proxies.values() if p.dump is not None]
    configs = {p.ref: _proxy_config(p) for p in readable}
    carried_vs = {ref: {r.virtual_service for rc in c.routes for vh in rc.virtual_hosts
                        for r in vh.routes if r.virtual_service}
                  for ref, c in configs.items()}
    for vs in sorted(store.of("VirtualService"), key=lambda r: r.comparator):
        if not _in_scope(vs, namespace):
            continue
        name = f"{vs.name}.{vs.namespace}"
        for proxy in _proxies_of_virtual_service(store, vs, readable, services):
            if name not in carried_vs[proxy.ref]:
                yield Message(msg.LIVE_NOT_IN_PROXY, ("VirtualService", vs.full_name, proxy.ref,
                                                      "no route names it", proxy.ref), vs)
    for dr in sorted(store.of("DestinationRule"), key=lambda r: r.comparator):
        if not _in_scope(dr, namespace) or dr.spec.get("workloadSelector") is not None:
            continue
        ns, short = hosts.resource_name(dr.namespace, str(dr.spec.get("host") or ""))
        service = store.get("Service", ns, short)
        if service is None:
            continue
        fqdn = hosts.to_fqdn(ns, short)
        ports = [p.get("port") for p in as_list(service.spec.get("ports"))
                 if isinstance(p, dict) and isinstance(p.get("port"), int)]
        export = strings(dr.spec.get("exportTo"))
        for proxy in readable:
            if export and "*" not in export and proxy.pod.namespace != dr.namespace:
                continue
            for port in ports:
                # None: no such cluster (a Sidecar may hide the host); another rule's name:
                # precedence, not sync. Only a cluster with no rule at all is not synced yet.
                if configs[proxy.ref].destination_rule_of(fqdn, port) == "":
                    yield Message(msg.LIVE_NOT_IN_PROXY, (
                        "DestinationRule", dr.full_name, proxy.ref,
                        f"its cluster outbound|{port}||{fqdn} has no DestinationRule",
                        proxy.ref), dr)
                    break


def _proxies_of_virtual_service(store: Store, vs: Resource, proxies: list[Proxy],
                                services) -> list[Proxy]:
    """The proxies that must carry `vs`: the pods of its Gateways whose servers accept its
    hosts, and for the mesh gateway the sidecars of its namespace when a host is a known
    service (istiod builds no route for a host nothing defines)."""
    from kubectl_mesh.analyze.analyzers.virtualservice import _host_in_gateway

    names = strings(vs.spec.get("gateways")) or [MESH_GATEWAY]
    vs_hosts = strings(vs.spec.get("hosts"))
    out: list[Proxy] = []
    for name in names:
        if name == MESH_GATEWAY:
            if any(services.find(vs.namespace, [], h) is not None for h in vs_hosts):
                out += [p for p in proxies if p.pod.proxy_type != "router"
                        and p.pod.namespace == vs.namespace]
            continue
        gateway = _gateway_of(store, vs, name)
        if gateway is None or not _host_in_gateway(gateway, vs_hosts, vs.namespace):
            continue
        selector = {str(k): str(v) for k, v in as_dict(gateway.spec.get("selector")).items()}
        out += [p for p in proxies if p.pod.proxy_type == "router" and selector
                and all(p.pod.labels.get(k) == v for k, v in selector.items())]
    return list({p.ref: p for p in out}.values())


def _nacks(session, proxies: dict[str, Proxy], istio_namespace: str, revision: Optional[str],
           warn) -> list[Message]:
    """The xDS types whose latest push each selected proxy rejected, from every istiod's
    syncz (reached as `kubectl mesh sync` reaches them)."""
    from kubectl_mesh.errors import MeshError
    from kubectl_mesh.sync.istiod import find_istiods
    from kubectl_mesh.sync.options import ReachOptions
    from kubectl_mesh.sync.reach import fetch_proxies, open_istiods
    from kubectl_mesh.syncz.model import merge_proxies

    try:
        pods = find_istiods(session.api, istio_namespace, revision)
        with open_istiods(session, pods, ReachOptions(), istio_namespace, revision,
                          None) as istiods:
            listed = merge_proxies(fetch_proxies(istiods))
    except MeshError as e:
        warn(f"warning: cannot read istiod's sync status ({e}); --live leaves out NACKs")
        return []
    out = []
    for sync in listed:
        proxy = proxies.get(sync.name)
        if proxy is None or proxy.resource is None:
            continue
        for t in sync.types:
            if t.last_error:
                out.append(Message(msg.LIVE_CONFIG_REJECTED, (proxy.ref, t.type, t.last_error),
                                   proxy.resource))
    return out


def _route_findings(store: Store, gateways: list[Proxy]) -> list[Message]:
    """`routes --check` on each gateway: a finding about a VirtualService is that object's
    message, any other the gateway pod's."""
    from kubectl_mesh.trace import check_config
    from kubectl_mesh.trace.check import ERROR

    out = []
    for proxy in gateways:
        if proxy.dump is None:
            continue
        for finding in check_config(proxy.dump):
            origin = _object_of(store, finding.istio_object) or proxy.resource
            if origin is None:
                continue
            kind = msg.LIVE_ROUTE_ERROR if finding.severity == ERROR else msg.LIVE_ROUTE_WARNING
            out.append(Message(kind, (proxy.ref, finding.where, finding.message, finding.fix),
                               origin))
    return out


def _object_of(store: Store, ref: str) -> Optional[Resource]:
    """`VirtualService name.ns` (a finding's ISTIO OBJECT) → the store's object."""
    kind, _, dotted = ref.partition(" ")
    name, _, namespace = dotted.partition(".")
    return store.get(kind, namespace, name) if kind and name else None
