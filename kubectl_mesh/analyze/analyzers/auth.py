"""mTLS between what a DestinationRule makes clients send and what the PeerAuthentication in
force makes the server accept.

Istio retired its own check (auth.MTLSAnalyzer, IST0113, when `Policy` became
PeerAuthentication); the conflict it caught still breaks traffic: a DestinationRule with
`tls.mode: DISABLE` toward workloads under a STRICT PeerAuthentication sends plaintext that
the server's sidecar resets (503 UC), and `ISTIO_MUTUAL` toward a `DISABLE` one sends mTLS
that the server cannot read. The code and text are IST0113's, with the PeerAuthentication as
the policy. The policy in force is Istio's: a workload selector's in the service's
namespace, else the namespace's, else the mesh-wide one in the mesh config's rootNamespace
(istio/pilot/pkg/security/authn/policy_applier.go composePeerAuthentication).
"""

from __future__ import annotations

from typing import Iterator, Optional

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.analyzers import hosts
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Resource, Store, as_dict, selector_matches

# DestinationRule tls.mode -> whether the client sends Istio mTLS
CLIENT_MTLS = {"DISABLE": False, "ISTIO_MUTUAL": True}
# the server mode each client setting cannot talk to
REFUSED_BY = {False: "STRICT", True: "DISABLE"}


def _mode(pa: Resource) -> Optional[str]:
    mode = str(as_dict(pa.spec.get("mtls")).get("mode") or "UNSET").upper()
    return None if mode == "UNSET" else mode


def mtls_conflicts(store: Store) -> Iterator[Message]:
    namespace_wide: dict[str, Resource] = {}
    with_selector: dict[str, list[Resource]] = {}
    for pa in sorted(store.of("PeerAuthentication"), key=lambda r: (r.namespace, r.name)):
        labels = as_dict(as_dict(pa.spec.get("selector")).get("matchLabels"))
        if labels:
            with_selector.setdefault(pa.namespace, []).append(pa)
        else:
            namespace_wide.setdefault(pa.namespace, pa)
    if not namespace_wide and not with_selector:
        return
    for dr in store.of("DestinationRule"):
        tls = str(as_dict(as_dict(dr.spec.get("trafficPolicy")).get("tls")).get("mode") or "")
        if tls not in CLIENT_MTLS:
            continue
        host = str(dr.spec.get("host") or "")
        ns, name = hosts.resource_name(dr.namespace, host)
        service = store.get("Service", ns, name)
        if service is None:
            continue
        policy, mode = _in_force(service, namespace_wide, with_selector,
                                 store.mesh.root_namespace)
        client = CLIENT_MTLS[tls]
        if policy is not None and mode == REFUSED_BY[client]:
            yield Message(msg.MTLS_POLICY_CONFLICT,
                          (hosts.to_fqdn(ns, name), dr.full_name, client, policy.full_name, mode),
                          dr, dr.line_of("spec", "trafficPolicy", "tls", "mode"))


def _in_force(service: Resource, namespace_wide: dict, with_selector: dict, root_namespace: str):
    """(PeerAuthentication, mode) that applies to the service's workloads, or (None, None)."""
    selector = {str(k): str(v) for k, v in as_dict(service.spec.get("selector")).items()}
    for pa in with_selector.get(service.namespace, []):
        labels = {str(k): str(v) for k, v in
                  as_dict(as_dict(pa.spec.get("selector")).get("matchLabels")).items()}
        if selector and selector_matches(labels, selector) and _mode(pa):
            return pa, _mode(pa)
    for pa in (namespace_wide.get(service.namespace), namespace_wide.get(root_namespace)):
        if pa is not None and _mode(pa):
            return pa, _mode(pa)
    return None, None
