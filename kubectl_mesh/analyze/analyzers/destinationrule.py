"""DestinationRule analyzers (istio/pkg/config/analysis/analyzers/destinationrule/subset.go)."""

from __future__ import annotations

from typing import Iterator

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.analyzers import hosts
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Store, as_dict, as_list, strings


def subsets_select_pods(store: Store) -> Iterator[Message]:
    """destinationrule.SubsetSelectPodAnalyzer: a host no service defines (IST0174) and a
    subset whose labels (with a ServiceEntry's workload selector) select no pod (IST0173).

    Pods are indexed by each label pair, so a subset is checked against the pods carrying its
    rarest label only, not against every pod.
    """
    services = hosts.ServiceHosts(store.of("ServiceEntry"), store.of("Service"))
    by_label: dict[tuple[str, str], list[dict]] = {}
    any_pod = False
    for pod in store.of("Pod"):
        any_pod = True
        for pair in pod.labels.items():
            by_label.setdefault(pair, []).append(pod.labels)
    for dr in store.of("DestinationRule"):
        host = str(dr.spec.get("host") or "")
        service = services.find(dr.namespace, strings(dr.spec.get("exportTo")), host)
        if service is None:
            yield Message(msg.UNKNOWN_DESTINATION_RULE_HOST, (host,), dr)
            continue
        for subset in as_list(dr.spec.get("subsets")):
            subset = as_dict(subset)
            selector = {**service["selector"], **as_dict(subset.get("labels"))}
            if not _selects_a_pod(selector, by_label, any_pod):
                yield Message(msg.DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                              (str(subset.get("name") or ""),), dr)


def _selects_a_pod(selector: dict, by_label: dict, any_pod: bool) -> bool:
    if not selector:
        return any_pod
    candidates = min((by_label.get((str(k), str(v)), []) for k, v in selector.items()), key=len)
    return any(all(labels.get(k) == str(v) for k, v in selector.items()) for labels in candidates)


# ClientTLSSettings modes that verify the server with caCertificates
_VERIFYING_MODES = ("SIMPLE", "MUTUAL")


def ca_certificates(store: Store) -> Iterator[Message]:
    """destinationrule.CaCertificateAnalyzer (destinationrule/ca-certificates.go): a SIMPLE or
    MUTUAL TLS setting without caCertificates does not verify the server (IST0128 for the
    rule's traffic policy, IST0129 per port), unless a credentialName supplies the CA to a
    rule with a workloadSelector."""
    for dr in store.of("DestinationRule"):
        policy = as_dict(dr.spec.get("trafficPolicy"))
        selected = dr.spec.get("workloadSelector") is not None
        host = str(dr.spec.get("host") or "")
        tls = as_dict(policy.get("tls"))
        if _unverified(tls, selected):
            yield Message(msg.NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
                          (dr.full_name, dr.namespace, tls.get("mode"), host), dr,
                          dr.line_of("spec", "trafficPolicy", "tls", "caCertificates"))
        for i, port_settings in enumerate(as_list(policy.get("portLevelSettings"))):
            port_settings = as_dict(port_settings)
            tls = as_dict(port_settings.get("tls"))
            if _unverified(tls, selected):
                yield Message(msg.NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
                              (dr.full_name, dr.namespace, tls.get("mode"), host,
                               port_selector_text(as_dict(port_settings.get("port")))), dr,
                              dr.line_of("spec", "trafficPolicy", "portLevelSettings", i, "tls",
                                         "caCertificates"))


def _unverified(tls: dict, selected: bool) -> bool:
    if str(tls.get("mode") or "") not in _VERIFYING_MODES or tls.get("caCertificates"):
        return False
    return not (tls.get("credentialName") and selected)


def port_selector_text(port: dict) -> str:
    """PortSelector.String() as Go's prototext writes it: `number:8443`, empty when unset."""
    number = port.get("number")
    return f"number:{number}" if number else ""
