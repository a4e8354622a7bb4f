"""schema.ValidationAnalyzer (istio/pkg/config/analysis/analyzers/schema/validation.go) for the
rejections users commonly write; each error of Istio's validation is one IST0106 message.

- a route or mirror destination host `*` (pkg/config/validation/validation.go
  validateDestination: "invalid destination host *");
- a DestinationRule MUTUAL client TLS setting without clientCertificate or privateKey and no
  credentialName (pkg/config/validation/agent/validation.go ValidateClientTLSSettings), in the
  rule's traffic policy, its ports' and its subsets';
- (IST0133, a warning) a ServiceEntry port serving TCP (or no protocol) without addresses
  when istiod will not allocate one: resolution NONE (the default) or the
  networking.istio.io/enable-autoallocate-ip=false label (validation.go ValidateServiceEntry,
  pilot/pkg/networking/serviceentry/ip_autoallocation.go shouldV2AutoAllocateIPFromPieces, with
  PILOT_ENABLE_IP_AUTOALLOCATE at its default, true);
- a Gateway server host (or the host part of `ns/host`) that is a short name
  (pkg/config/validation/agent/validation.go validateSidecarOrGatewayHostnamePart).
"""

from __future__ import annotations

from typing import Iterator

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.analyzers.virtualservice import mirror_destinations, route_destinations
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Store, as_dict, as_list


def validation(store: Store) -> Iterator[Message]:
    yield from gateway_host_errors(store)
    yield from service_entry_warnings(store)
    for vs in store.of("VirtualService"):
        for d in (*route_destinations(vs), *mirror_destinations(vs)):
            if d.destination and d.host == "*":
                yield Message(msg.SCHEMA_VALIDATION_ERROR, ("invalid destination host *",), vs)
    for dr in store.of("DestinationRule"):
        policies = [as_dict(dr.spec.get("trafficPolicy"))]
        policies += [as_dict(as_dict(s).get("trafficPolicy"))
                     for s in as_list(dr.spec.get("subsets"))]
        for policy in policies:
            settings = [as_dict(policy.get("tls"))]
            settings += [as_dict(as_dict(p).get("tls"))
                         for p in as_list(policy.get("portLevelSettings"))]
            for tls in settings:
                for error in _client_tls_errors(tls):
                    yield Message(msg.SCHEMA_VALIDATION_ERROR, (error,), dr)


AUTOALLOCATE_LABEL = "networking.istio.io/enable-autoallocate-ip"


def service_entry_warnings(store: Store) -> Iterator[Message]:
    for se in store.of("ServiceEntry"):
        if as_list(se.spec.get("addresses")):
            continue
        allocated = str(se.spec.get("resolution") or "NONE") != "NONE" \
            and se.labels.get(AUTOALLOCATE_LABEL, "").lower() != "false"
        if allocated:
            continue
        for port in as_list(se.spec.get("ports")):
            if str(as_dict(port).get("protocol") or "") in ("", "TCP"):
                yield Message(msg.SCHEMA_WARNING,
                              ("addresses are required for ports serving TCP (or unset) "
                               "protocol when IP Autoallocation is not enabled",), se)


def gateway_host_errors(store: Store) -> Iterator[Message]:
    for gw in store.of("Gateway"):
        for server in as_list(gw.spec.get("servers")):
            for host in as_list(as_dict(server).get("hosts")):
                if not isinstance(host, str):
                    continue
                name = host.rpartition("/")[2]
                if name != "*" and "." not in name:
                    yield Message(msg.SCHEMA_VALIDATION_ERROR,
                                  ("short names (non FQDN) are not allowed",), gw)


def _client_tls_errors(tls: dict) -> list[str]:
    mode = str(tls.get("mode") or "")
    if mode in ("SIMPLE", "MUTUAL") and tls.get("credentialName"):
        return []
    errors = []
    if mode == "MUTUAL":
        if not tls.get("clientCertificate"):
            errors.append("client certificate required for mutual tls")
        if not tls.get("privateKey"):
            errors.append("private key required for mutual tls")
    return errors
