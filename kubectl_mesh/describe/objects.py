"""The objects describe reads – analyze's store of the cluster, plus Sidecars and
AuthorizationPolicies – and the look-ups a description needs, each indexed once.

Which DestinationRule a service gets follows Istio's precedence
(pilot/pkg/model/push_context.go `destinationRule`): one in the client's namespace, then the
service's namespace, then the root namespace, then any exported to every namespace; an exact
host before a wildcard; among equals the oldest. The root namespace is the mesh config's
`rootNamespace` (the `istio` ConfigMap), defaulting to the Istio namespace.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

from kubectl_mesh.analyze.analyzers.hosts import CLUSTER_DOMAIN, matches
from kubectl_mesh.analyze.resources import KINDS as ANALYZED_KINDS
from kubectl_mesh.analyze.resources import (Resource, Store, as_dict, as_list, selector_matches,
                                            strings)

# analyze's kinds but Secrets (only a Gateway's credentialName needs them, and listing them
# is a right many users lack) and the webhook configurations (about the control plane, not a
# pod), plus the policies that select pods.
NOT_READ = frozenset({"Secret", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"})
KINDS: dict[str, tuple[str, str, bool]] = {
    **{kind: where for kind, where in ANALYZED_KINDS.items() if kind not in NOT_READ},
    "Sidecar": ("/apis/networking.istio.io/v1", "sidecars", True),
    "AuthorizationPolicy": ("/apis/security.istio.io/v1", "authorizationpolicies", True),
}
INGRESS_LABEL = ("istio", "ingressgateway")  # the pods istioctl looks for (printIngressInfo)
MESH_GATEWAY = "mesh"


def service_fqdn(svc: Resource) -> str:
    return f"{svc.name}.{svc.namespace}.{CLUSTER_DOMAIN}"


def destination_fqdn(host: str, namespace: str) -> str:
    """A route destination's host as describe compares it: model.ResolveShortnameToFQDN in
    the VirtualService's namespace, then extendFQDN (`name.ns` → `name.ns.svc.cluster.local`)."""
    if not host or host.startswith("*"):
        return host
    if "." not in host:
        host = f"{host}.{namespace}"
    return host if host.endswith("." + CLUSTER_DOMAIN) else f"{host}.{CLUSTER_DOMAIN}"


def dr_host_fqdn(host: str, namespace: str) -> str:
    """A DestinationRule's host: a short name is in the DestinationRule's namespace."""
    if not host or host.startswith("*") or "." in host:
        return host
    return f"{host}.{namespace}.{CLUSTER_DOMAIN}"


def _created(r: Resource) -> str:
    return str(r.metadata.get("creationTimestamp") or "")


class MeshObjects:
    """The cluster's objects, with what describe looks up: services of a pod, pods of a
    service, the DestinationRule and VirtualServices of a host, gateways, policies."""

    def __init__(self, store: Store, *, missing: Iterable[str] = (), refused: Iterable[str] = (),
                 root_namespace: str = "istio-system"):
        self.store = store
        self.missing = frozenset(missing)  # kinds the cluster does not serve: there are none
        self.refused = frozenset(refused)  # kinds RBAC did not let us list: unknown
        self.root_namespace = root_namespace
        self._drs_exact: dict[str, list[Resource]] = {}
        self._drs_wild: list[tuple[str, Resource]] = []
        for dr in sorted(store.of("DestinationRule"), key=_created):
            host = dr_host_fqdn(str(dr.spec.get("host") or ""), dr.namespace)
            if host.startswith("*"):
                self._drs_wild.append((host, dr))
            elif host:
                self._drs_exact.setdefault(host, []).append(dr)
        self._vs_by_destination: dict[str, list[Resource]] = {}
        for vs in sorted(store.of("VirtualService"), key=lambda r: (r.namespace, r.name)):
            for host in _destination_hosts(vs):
                listed = self._vs_by_destination.setdefault(host, [])
                if not listed or listed[-1] is not vs:
                    listed.append(vs)

    # -- kube ---------------------------------------------------------------------------------

    def pod(self, namespace: str, name: str) -> Optional[Resource]:
        return self.store.get("Pod", namespace, name)

    def namespace_labels(self, namespace: str) -> Optional[dict]:
        """The namespace's labels; None when the namespace could not be read."""
        if "Namespace" in self.refused:
            return None
        ns = self.store.get("Namespace", "", namespace)
        return dict(ns.labels) if ns is not None else {}

    def services_selecting(self, pod: Resource) -> list[Resource]:
        """istioctl's matchingServices: the pod's namespace's Services with a non-empty
        selector that its labels satisfy."""
        out = []
        for svc in self.store.of("Service"):
            selector = as_dict(svc.spec.get("selector"))
            if svc.namespace == pod.namespace and selector and \
                    selector_matches({str(k): str(v) for k, v in selector.items()}, pod.labels):
                out.append(svc)
        return sorted(out, key=lambda s: s.name)

    def pods_selected_by(self, svc: Resource) -> list[Resource]:
        selector = {str(k): str(v) for k, v in as_dict(svc.spec.get("selector")).items()}
        if not selector:
            return []
        return sorted((p for p in self.store.of("Pod")
                       if p.namespace == svc.namespace and selector_matches(selector, p.labels)),
                      key=lambda p: p.name)

    # -- networking ---------------------------------------------------------------------------

    def destination_rule_for(self, fqdn: str, client_namespace: str) -> Optional[Resource]:
        """The DestinationRule a client in `client_namespace` gets for `fqdn` (None: none)."""
        service_namespace = fqdn.split(".")[1] if fqdn.count(".") >= 2 else ""
        exact = self._drs_exact.get(fqdn, [])
        wild = [dr for host, dr in self._drs_wild if matches(host, fqdn)]
        for candidates in (exact, wild):
            visible = [dr for dr in candidates if _exported_to(dr, client_namespace)]
            for namespace in (client_namespace, service_namespace, self.root_namespace):
                for dr in visible:
                    if dr.namespace == namespace:
                        return dr
            everywhere = [dr for dr in visible if _exported_everywhere(dr)]
            if everywhere:
                return everywhere[0]
        return None

    def virtual_services_to(self, fqdn: str) -> list[Resource]:
        """The VirtualServices with an HTTP, TLS or TCP route to `fqdn`, by namespace/name."""
        return list(self._vs_by_destination.get(fqdn, []))

    def gateway(self, reference: str, vs_namespace: str) -> tuple[str, str, Optional[Resource]]:
        """(namespace, name, Gateway or None) a VirtualService's `gateways` entry names."""
        namespace, _, name = reference.rpartition("/")
        namespace = namespace or vs_namespace
        if "." in name and not namespace:  # the older `name.namespace` form
            name, _, namespace = name.partition(".")
        return namespace, name, self.store.get("Gateway", namespace, name)

    def ingress_pods(self) -> list[Resource]:
        """Running pods labelled istio=ingressgateway, in every namespace."""
        key, value = INGRESS_LABEL
        return sorted((p for p in self.store.of("Pod") if p.labels.get(key) == value
                       and as_dict(p.obj.get("status")).get("phase") == "Running"),
                      key=lambda p: (p.namespace, p.name))

    def services_in(self, namespace: str) -> list[Resource]:
        return sorted((s for s in self.store.of("Service") if s.namespace == namespace),
                      key=lambda s: s.name)

    # -- security -----------------------------------------------------------------------------

    def selecting(self, kind: str, pod: Resource,
                  selector_of: Callable[[Resource], dict]) -> list[Resource]:
        """Objects of `kind` in the pod's namespace or the root namespace whose selector
        (`selector_of`) is empty or matches the pod's labels (istioctl findMatchedConfigs),
        root namespace first, then by creation time."""
        out = []
        for obj in self.store.of(kind):
            if obj.namespace not in (pod.namespace, self.root_namespace):
                continue
            selector = {str(k): str(v) for k, v in selector_of(obj).items()}
            if selector_matches(selector, pod.labels):
                out.append(obj)
        return sorted(out, key=lambda o: (o.namespace != self.root_namespace, _created(o), o.name))


def _exported_to(dr: Resource, namespace: str) -> bool:
    export = strings(dr.spec.get("exportTo"))
    if not export or "*" in export:
        return True
    return namespace in export or (dr.namespace == namespace and "." in export)


def _exported_everywhere(dr: Resource) -> bool:
    export = strings(dr.spec.get("exportTo"))
    return not export or "*" in export


def _destination_hosts(vs: Resource) -> list[str]:
    out = []
    for section in ("http", "tls", "tcp"):
        for route in as_list(vs.spec.get(section)):
            for dest in as_list(as_dict(route).get("route")):
                host = as_dict(as_dict(dest).get("destination")).get("host")
                if isinstance(host, str) and host:
                    out.append(destination_fqdn(host, vs.namespace))
    return out


def workload_selector(obj: Resource) -> dict:
    """`spec.selector.matchLabels` (PeerAuthentication, AuthorizationPolicy)."""
    return as_dict(as_dict(obj.spec.get("selector")).get("matchLabels"))


def sidecar_selector(obj: Resource) -> dict:
    """`spec.workloadSelector.labels` (Sidecar)."""
    return as_dict(as_dict(obj.spec.get("workloadSelector")).get("labels"))
