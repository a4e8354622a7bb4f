"""The policies that select a pod: the effective PeerAuthentication (and so whether mTLS is
required), the Sidecar, the AuthorizationPolicies.

The PeerAuthentication that wins is Istio's choice (pilot/pkg/security/authn/
policy_applier.go `ComposePeerAuthentication`): the oldest mesh-wide one (root namespace, no
selector), then the oldest of the namespace, then the oldest workload one (selector, not in the
root namespace), each overriding the mode of the one before unless its mode is UNSET; port-level
modes come from the workload one only. Without any, the mode is PERMISSIVE. The Sidecar that
applies (pilot/pkg/model/sidecar.go, `SidecarScope` selection): one in the pod's namespace whose
workloadSelector matches, else the namespace's one without selector, else the root
namespace's one without selector.
"""

from __future__ import annotations

from typing import Optional

from kubectl_mesh.analyze.resources import Resource, as_dict, as_list
from kubectl_mesh.describe.objects import MeshObjects, sidecar_selector, workload_selector

UNSET = "UNSET"


def _mode(mtls) -> Optional[str]:
    mode = as_dict(mtls).get("mode") if mtls is not None else None
    return None if mode in (None, UNSET) else str(mode)


def peer_authentication(mesh: MeshObjects, pod: Resource) -> dict:
    """The effective mTLS mode (workload and per port), where it comes from, and the
    PeerAuthentications that apply (`Applied PeerAuthentication:`)."""
    if "PeerAuthentication" in mesh.refused:
        return {"known": False, "mode": None, "perPort": {}, "scope": None, "source": None,
                "applied": [], "mtlsRequired": None}
    applied = mesh.selecting("PeerAuthentication", pod, workload_selector)
    mesh_wide = namespace_wide = workload = None
    for pa in applied:  # oldest first, root namespace first
        if not workload_selector(pa):
            if pa.namespace == mesh.root_namespace:
                mesh_wide = mesh_wide or pa
            else:
                namespace_wide = namespace_wide or pa
        elif pa.namespace != mesh.root_namespace:
            workload = workload or pa
    mode, scope, source = "PERMISSIVE", "default", None
    for level, pa in (("mesh", mesh_wide), ("namespace", namespace_wide), ("workload", workload)):
        if pa is not None and _mode(pa.spec.get("mtls")) is not None:
            mode, scope, source = _mode(pa.spec.get("mtls")), level, f"{pa.name}.{pa.namespace}"
    per_port: dict[str, str] = {}
    if workload is not None:
        for port, mtls in as_dict(workload.spec.get("portLevelMtls")).items():
            per_port[str(port)] = _mode(mtls) or mode
    strict_ports = sorted((p for p, m in per_port.items() if m == "STRICT"), key=_port_key)
    return {"known": True, "mode": mode, "perPort": dict(sorted(per_port.items(),
                                                                key=lambda kv: _port_key(kv[0]))),
            "scope": scope, "source": source, "applied": [f"{pa.name}.{pa.namespace}" for pa in applied],
            "mtlsRequired": mode == "STRICT" and all(m == "STRICT" for m in per_port.values()),
            "mtlsRequiredPorts": strict_ports}


def _port_key(port: str):
    return (0, int(port)) if port.isdigit() else (1, port)


def sidecar(mesh: MeshObjects, pod: Resource) -> Optional[dict]:
    """The Sidecar that scopes the pod's proxy, or None (the default: all hosts)."""
    if "Sidecar" in mesh.refused:
        return {"known": False}
    candidates = mesh.selecting("Sidecar", pod, sidecar_selector)
    order = ([s for s in candidates if s.namespace == pod.namespace and sidecar_selector(s)]
             + [s for s in candidates if s.namespace == pod.namespace and not sidecar_selector(s)]
             + [s for s in candidates if s.namespace == mesh.root_namespace
                and not sidecar_selector(s)])
    if not order:
        return None
    chosen = order[0]
    hosts = []
    for listener in as_list(chosen.spec.get("egress")):
        hosts += [h for h in as_list(as_dict(listener).get("hosts")) if isinstance(h, str)]
    return {"known": True, "name": chosen.name, "namespace": chosen.namespace,
            "egressHosts": hosts,
            "outboundTrafficPolicy": as_dict(chosen.spec.get("outboundTrafficPolicy")).get("mode")}


def authorization_policies(mesh: MeshObjects, pod: Resource) -> Optional[list[dict]]:
    """The AuthorizationPolicies that select the pod (its namespace's with a matching or no
    selector, the root namespace's mesh-wide ones); None when they could not be read."""
    if "AuthorizationPolicy" in mesh.refused:
        return None
    out = []
    for ap in mesh.selecting("AuthorizationPolicy", pod, workload_selector):
        if ap.spec.get("targetRef") or ap.spec.get("targetRefs"):
            continue  # bound to a Gateway/Service by reference (waypoints), not to pods
        out.append({"name": ap.name, "namespace": ap.namespace,
                    "action": str(ap.spec.get("action") or "ALLOW"),
                    "rules": len(as_list(ap.spec.get("rules")))})
    return out
