"""The controllers a cluster runs for the kinds the sandbox serves.

Deployment → ReplicaSet → Pods, StatefulSet/DaemonSet → Pods, garbage collection by owner,
Service cluster IPs and Endpoints, and Istio sidecar injection at pod admission. Work is
queued by the store listener and done on one controller thread, so writes made here never
recurse into the listener.
"""

from __future__ import annotations

import copy
import hashlib
import json
import queue
import secrets
import threading

from .apiserver import kinds, selectors
from .apiserver.server import Api, ApiError
from .apiserver.store import Event, NotFound
from .sidecartemplate import inject

INJECT_ANNOTATION = "sidecar.istio.io/inject"


def wants_sidecar(pod: dict, namespace: dict | None) -> bool:
    """Whether Istio's injector (default revision) injects `pod`: which of its webhooks the
    API server calls is decided by label selectors (manifests/charts/istio-control/
    istio-discovery/templates/mutatingwebhook.yaml: `namespace` – the namespace's
    istio-injection=enabled; `rev.namespace` – its istio.io/rev; without either, `rev.object`
    – the pod's istio.io/rev label – and `object` – the pod's sidecar.istio.io/inject=true
    label), each unless the pod's label says "false"; the injector then also declines a pod
    whose annotation says "false" (pkg/kube/inject/inject.go `injectRequired`)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(INJECT_ANNOTATION) == "false" or \
            (meta.get("annotations") or {}).get(INJECT_ANNOTATION) == "false":
        return False
    ns_labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    if "istio-injection" in ns_labels:
        return ns_labels["istio-injection"] == "enabled"
    if "istio.io/rev" in ns_labels:
        return ns_labels["istio.io/rev"] == "default"
    if "istio.io/rev" in labels:
        return labels["istio.io/rev"] == "default"
    return labels.get(INJECT_ANNOTATION) == "true"


NATIVE_ANNOTATION = "sidecar.istio.io/nativeSidecar"
NATIVE_MODE_FILE = "native-sidecars"  # <state>/native-sidecars: true | false | auto
NATIVE_MODE_DEFAULT = "auto"  # istiod's ENABLE_NATIVE_SIDECARS default
CNI_FILE = "istio-cni"  # <state>/istio-cni: true when Istio CNI is installed (default false)


def native_sidecar(pod: dict, mode: str, nodes: list[dict]) -> bool:
    """Whether the injector puts istio-proxy among the init containers with restartPolicy
    Always (a Kubernetes native sidecar), as istiod decides it: the pod's
    `sidecar.istio.io/nativeSidecar` annotation wins (pkg/kube/inject/inject.go
    `injectPod`), then ENABLE_NATIVE_SIDECARS (pilot/pkg/features/pilot.go: true, false,
    auto by default, anything else false); auto is on when every node's kubelet is 1.33 or
    newer (pkg/kube/inject/webhook.go `DetectNativeSidecar`: one older node turns it off)."""
    annotation = ((pod.get("metadata") or {}).get("annotations") or {}).get(NATIVE_ANNOTATION)
    if annotation in ("true", "false"):
        return annotation == "true"
    if mode != "auto":
        return mode == "true"
    return all(_kubelet_minor(n) >= 33 for n in nodes)


def _kubelet_minor(node: dict) -> int:
    version = (((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "")
    try:
        return int(version.lstrip("v").split(".")[1])
    except (IndexError, ValueError):
        return 0  # unreadable: DetectNativeSidecar counts it as too old


ROOT_CA_NAME = "kube-root-ca.crt"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters.")


def template_hash(template: dict) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join(c for c in digest if c in "bcdfghjklmnpqrstvwxz2456789")[:10].ljust(10, "x")


def _owned_by(obj: dict, uid: str) -> bool:
    return any(r.get("uid") == uid for r in (obj.get("metadata") or {}).get("ownerReferences") or [])


def _owner_ref(owner: dict, kind: str, api_version: str) -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


class Controllers:
    """Reconciles workloads, endpoints and garbage on a single background thread."""

    def __init__(self, api: Api, native_mode=lambda: NATIVE_MODE_DEFAULT, root_ca: bytes = b"",
                 cni=lambda: False):
        self.api = api
        self.root_ca = root_ca.decode()  # published in every namespace as kube-root-ca.crt
        self.native_mode = native_mode  # ENABLE_NATIVE_SIDECARS of the injector, read per pod
        self.cni = cni  # Istio CNI installed (values.pilot.cni.enabled), read per pod
        self.store = api.store
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._cluster_ip_next = 1
        self._thread = threading.Thread(target=self._run, name="controllers", daemon=True)
        api.admission.append(self._admit)
        self.store.add_listener(self._on_event)

    def start(self) -> "Controllers":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout=5)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far has been reconciled."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    # -- admission (runs in the request thread, before the write)
    def _admit(self, kind: kinds.Kind, obj: dict, old: dict | None) -> None:
        if kind.key == "pods" and old is None:
            ns = self.store.find("namespaces", "", obj["metadata"]["namespace"])
            spec = obj.setdefault("spec", {})
            containers = spec.setdefault("containers", [])
            present = any(c.get("name") == "istio-proxy"
                          for c in containers + (spec.get("initContainers") or []))
            if wants_sidecar(obj, ns) and not present:
                inject(obj, native_sidecar(obj, self.native_mode(),
                                           self.store.scan("nodes")[0]), self.cni())
        if kind.key == "services" and old is None:
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            if not spec.get("clusterIP"):
                n = self._cluster_ip_next
                self._cluster_ip_next += 1
                spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
            if spec["type"] == "LoadBalancer":
                obj.setdefault("status", {})["loadBalancer"] = {"ingress": [{"ip": "127.0.0.1"}]}
        if kind.key == "namespaces":
            obj.setdefault("status", {"phase": "Active"})

    # -- queue
    def _on_event(self, ev: Event) -> None:
        self._queue.put(ev)

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self._reconcile(item)
            except (ApiError, NotFound):
                pass  # the object changed under us; a later event reconciles again

    def _reconcile(self, ev: Event) -> None:
        if ev.type == "DELETED":
            self._collect_garbage(ev.obj)
        if ev.key == "deployments.apps" and ev.type != "DELETED":
            self._sync_deployment(ev.namespace, ev.name)
        elif ev.key == "replicasets.apps" and ev.type != "DELETED":
            self._sync_pods(ev.namespace, ev.name, "replicasets.apps")
        elif ev.key == "statefulsets.apps" and ev.type != "DELETED":
            self._sync_pods(ev.namespace, ev.name, "statefulsets.apps")
        elif ev.key == "daemonsets.apps" and ev.type != "DELETED":
            self._sync_pods(ev.namespace, ev.name, "daemonsets.apps")
        elif ev.key == "pods":
            for ref in (ev.obj.get("metadata") or {}).get("ownerReferences") or []:
                key = {"ReplicaSet": "replicasets.apps", "StatefulSet": "statefulsets.apps",
                       "DaemonSet": "daemonsets.apps"}.get(ref.get("kind"))
                if key:
                    self._sync_pods(ev.namespace, ref["name"], key)
            for svc in self._services_for_pod(ev.obj):
                self._sync_endpoints(svc)
        elif ev.key == "services":
            svc = self.store.peek("services", ev.namespace, ev.name)
            if svc is not None:
                self._sync_endpoints(svc)
        elif ev.key == "namespaces" and ev.type != "DELETED":
            self._sync_namespace(ev.name)
        elif (ev.key, ev.name) in (("serviceaccounts", "default"), ("configmaps", ROOT_CA_NAME)):
            self._sync_namespace(ev.namespace)

    # -- namespaces
    def _sync_namespace(self, ns: str) -> None:
        """What the controller manager keeps in every namespace: the `default` service account
        (pkg/controller/serviceaccount/serviceaccounts_controller.go `syncNamespace`) and the
        `kube-root-ca.crt` ConfigMap with the cluster CA (pkg/controller/certificates/
        rootcacertpublisher/publisher.go `syncNamespace`), created again when deleted."""
        if self.store.peek("namespaces", "", ns) is None:
            return
        if self.store.peek("serviceaccounts", ns, "default") is None:
            self.api.create(kinds.by_key("serviceaccounts"), ns, {
                "metadata": {"name": "default", "namespace": ns}})
        data = {"ca.crt": self.root_ca}
        current = self.store.peek("configmaps", ns, ROOT_CA_NAME)
        if current is None:
            self.api.create(kinds.by_key("configmaps"), ns, {
                "metadata": {"name": ROOT_CA_NAME, "namespace": ns,
                             "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                "data": data})
        elif current.get("data") != data:
            updated = copy.deepcopy(current)
            updated["data"] = data
            self.api.replace(kinds.by_key("configmaps"), updated)

    def _collect_garbage(self, owner: dict) -> None:
        uid = (owner.get("metadata") or {}).get("uid")
        for k in kinds.KINDS:
            if not k.namespaced:
                continue
            for o in self.store.scan(k.key, owner["metadata"].get("namespace") or None)[0]:
                if _owned_by(o, uid):
                    try:
                        self.api.delete(k, o["metadata"]["namespace"], o["metadata"]["name"])
                    except ApiError:
                        pass

    # -- workloads
    def _sync_deployment(self, ns: str, name: str) -> None:
        dep = self.store.peek("deployments.apps", ns, name)  # read only: copied where kept
        if dep is None:
            return
        template = (dep.get("spec") or {}).get("template") or {}
        h = template_hash(template)
        rs_kind = kinds.by_key("replicasets.apps")
        rs_name = f"{name}-{h}"
        desired = int((dep.get("spec") or {}).get("replicas", 1))
        owned = [copy.deepcopy(rs) for rs in self.store.scan("replicasets.apps", ns)[0]
                 if _owned_by(rs, dep["metadata"]["uid"])]
        current = next((rs for rs in owned if rs["metadata"]["name"] == rs_name), None)
        if current is None:
            tmpl = copy.deepcopy(template)
            tmpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
            sel = copy.deepcopy((dep.get("spec") or {}).get("selector") or {})
            sel.setdefault("matchLabels", {})["pod-template-hash"] = h
            self.api.create(rs_kind, ns, {
                "metadata": {"name": rs_name, "namespace": ns,
                             "labels": dict(tmpl["metadata"]["labels"]),
                             "ownerReferences": [_owner_ref(dep, "Deployment", "apps/v1")]},
                "spec": {"replicas": desired, "selector": sel, "template": tmpl}})
        elif int(current["spec"].get("replicas", 0)) != desired:
            current["spec"]["replicas"] = desired
            self.api.replace(rs_kind, current)
        for rs in owned:  # a rollout here is instantaneous: old ReplicaSets go to zero
            if rs["metadata"]["name"] != rs_name and int(rs["spec"].get("replicas", 0)) != 0:
                rs["spec"]["replicas"] = 0
                self.api.replace(rs_kind, rs)
        self._update_workload_status("deployments.apps", ns, name)

    def _sync_pods(self, ns: str, name: str, key: str) -> None:
        owner = self.store.peek(key, ns, name)  # read only: _create_pod copies the template
        if owner is None:
            return
        spec = owner.get("spec") or {}
        desired = 1 if key == "daemonsets.apps" else int(spec.get("replicas", 1))
        pods = [p for p in self.store.scan("pods", ns)[0] if _owned_by(p, owner["metadata"]["uid"])]
        if key != "statefulsets.apps":
            # a terminating pod is not a replica any more: its replacement starts at once
            # (pkg/controller/controller_utils.go FilterActivePods / IsPodActive)
            pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        kind_name = {"replicasets.apps": "ReplicaSet", "statefulsets.apps": "StatefulSet",
                     "daemonsets.apps": "DaemonSet"}[key]
        pod_kind = kinds.by_key("pods")
        if key == "statefulsets.apps":
            names = [f"{name}-{i}" for i in range(desired)]
            have = {p["metadata"]["name"] for p in pods}
            for pod_name in names:
                if pod_name not in have:
                    self._create_pod(owner, kind_name, ns, pod_name)
            for p in pods:
                if p["metadata"]["name"] not in names:
                    self.api.delete(pod_kind, ns, p["metadata"]["name"])
        else:
            for _ in range(desired - len(pods)):
                self._create_pod(owner, kind_name, ns, f"{name}-{secrets.token_hex(4)[:5]}")
            if len(pods) > desired:
                newest = sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)
                for p in newest[:len(pods) - desired]:
                    self.api.delete(pod_kind, ns, p["metadata"]["name"])
        self._update_workload_status(key, ns, name)
        for ref in (owner.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("kind") == "Deployment":
                self._update_workload_status("deployments.apps", ns, ref["name"])

    def _create_pod(self, owner: dict, kind_name: str, ns: str, name: str) -> None:
        template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
        meta = template.get("metadata") or {}
        api_version = "apps/v1"
        pod = {"metadata": {"name": name, "namespace": ns, "labels": meta.get("labels") or {},
                            "annotations": meta.get("annotations") or {},
                            "ownerReferences": [_owner_ref(owner, kind_name, api_version)]},
               "spec": template.get("spec") or {}}
        self.api.create(kinds.by_key("pods"), ns, pod)

    def _update_workload_status(self, key: str, ns: str, name: str) -> None:
        obj = self.store.peek(key, ns, name)  # read only: copied below before a write
        if obj is None:
            return
        if key == "deployments.apps":
            rss = [r for r in self.store.scan("replicasets.apps", ns)[0]
                   if _owned_by(r, obj["metadata"]["uid"])]
            uids = {r["metadata"]["uid"] for r in rss}
            current = f"{name}-{template_hash((obj.get('spec') or {}).get('template') or {})}"
            cur_uids = {r["metadata"]["uid"] for r in rss if r["metadata"]["name"] == current}
        else:
            uids = cur_uids = {obj["metadata"]["uid"]}
        pods = [p for p in self.store.scan("pods", ns)[0]
                if any(_owned_by(p, u) for u in uids) and not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in pods if pod_ready(p))
        updated = sum(1 for p in pods if any(_owned_by(p, u) for u in cur_uids))
        status = {"observedGeneration": obj["metadata"].get("generation", 1),
                  "replicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
                  "updatedReplicas": updated}
        if key == "daemonsets.apps":
            status = {"desiredNumberScheduled": 1, "currentNumberScheduled": len(pods),
                      "numberReady": ready, "numberAvailable": ready}
        if obj.get("status") != status:
            obj = copy.deepcopy(obj)
            obj["status"] = status
            self.store.replace(key, obj, bump_generation=False)

    # -- services
    def _services_for_pod(self, pod: dict) -> list[dict]:
        """The Services whose endpoints a change of `pod` can move: those selecting it now and
        those listing it already (its labels may have changed). Others stay as they are, so a
        pod event costs one Service's work, not a namespace's."""
        meta = pod.get("metadata") or {}
        ns, labels, name = meta.get("namespace", ""), meta.get("labels"), meta.get("name")
        out = []
        for svc in self.store.scan("services", ns)[0]:
            if selectors.matches_labels((svc.get("spec") or {}).get("selector"), labels) or \
                    _lists_pod(self.store.peek("endpoints", ns, svc["metadata"]["name"]), name):
                out.append(svc)
        return out

    def _sync_endpoints(self, svc: dict) -> None:
        """Write the Endpoints of one Service from the pods it selects (read only: `svc` and
        the pods are the store's shared objects). A Service without a selector gets none: its
        Endpoints are written by others (pkg/controller/endpoint/endpoints_controller.go
        `syncService`)."""
        ns = svc["metadata"]["namespace"]
        spec = svc.get("spec") or {}
        if spec.get("selector") is None:
            return
        pods = self.store.scan("pods", ns)[0]
        selected = [p for p in pods if selectors.matches_labels(spec.get("selector"),
                                                                p["metadata"].get("labels"))
                    and (p.get("status") or {}).get("podIP")]
        subsets = []
        if selected and spec.get("ports"):
            addresses = lambda ok: [  # noqa: E731
                {"ip": p["status"]["podIP"], "nodeName": p["spec"].get("nodeName"),
                 "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": ns,
                               "uid": p["metadata"]["uid"]}}
                for p in selected if pod_ready(p) == ok]
            ports = [{"name": sp.get("name", ""), "port": resolve_target_port(sp, selected[0]),
                      "protocol": sp.get("protocol", "TCP")} for sp in spec["ports"]]
            subset = {"ports": ports}
            if addresses(True):
                subset["addresses"] = addresses(True)
            if addresses(False):
                subset["notReadyAddresses"] = addresses(False)
            subsets = [subset]
        name = svc["metadata"]["name"]
        old = self.store.peek("endpoints", ns, name)
        if old is None:
            ep = {"apiVersion": "v1", "kind": "Endpoints",
                  "metadata": {"name": name, "namespace": ns,
                               "labels": copy.deepcopy(svc["metadata"].get("labels") or {})},
                  "subsets": subsets}
            self.api.create(kinds.by_key("endpoints"), ns, ep)
        elif old.get("subsets") != subsets:
            old = copy.deepcopy(old)
            old["subsets"] = subsets
            self.store.replace("endpoints", old)


def _lists_pod(endpoints: dict | None, pod_name: str) -> bool:
    for subset in (endpoints or {}).get("subsets") or []:
        for address in (subset.get("addresses") or []) + (subset.get("notReadyAddresses") or []):
            if (address.get("targetRef") or {}).get("name") == pod_name:
                return True
    return False


def resolve_target_port(service_port: dict, pod: dict) -> int:
    """A Service port's targetPort as a number (named ports are looked up in the pod)."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for c in port_containers(pod):
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    return int(service_port.get("port"))


def port_containers(pod: dict) -> list[dict]:
    """Where a named targetPort is looked up: the containers, then the native sidecars
    (k8s.io/endpointslice utils.go `FindPort`)."""
    spec = pod.get("spec") or {}
    return (spec.get("containers") or []) + [c for c in spec.get("initContainers") or []
                                             if c.get("restartPolicy") == "Always"]
