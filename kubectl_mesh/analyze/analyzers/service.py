"""Service analyzers (istio/pkg/config/analysis/analyzers/service/portname.go)."""

from __future__ import annotations

from typing import Iterator

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Store, as_dict, as_list

# istio/pkg/config/kube/conversion.go wellKnownPorts: SMTP, DNS, MySQL, MongoDB → TCP.
WELL_KNOWN_PORTS = frozenset({25, 53, 3306, 27017})
GATEWAY_MANAGED = frozenset({"istio.io-gateway-controller", "istio.io-mesh-controller",
                             "istio.io-eastwest-controller"})
# istio/pkg/config/protocol/instance.go Parse, and the Instance names it returns.
PROTOCOL_NAMES = {"tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web",
                  "http": "HTTP", "http_proxy": "HTTP_PROXY", "http2": "HTTP2", "https": "HTTPS",
                  "tls": "TLS", "mongo": "Mongo", "redis": "Redis", "mysql": "MySQL"}
K8S_APP_PROTOCOL_NAMES = {"kubernetes.io/h2c": "HTTP2", "kubernetes.io/ws": "HTTP",
                          "kubernetes.io/wss": "HTTPS"}
UNSUPPORTED = "UnsupportedProtocol"


def port_protocol(port: dict) -> str:
    """kube.ConvertProtocol: the protocol Istio gives a Service port (`HTTP`, `GRPC-Web`, `TCP`
    for a well-known port, `UnsupportedProtocol` when it cannot tell)."""
    if (port.get("protocol") or "TCP") == "UDP":
        return "UDP"
    app = port.get("appProtocol")
    name = str(app if app is not None else port.get("name") or "")
    if app is not None and name in K8S_APP_PROTOCOL_NAMES:
        return K8S_APP_PROTOCOL_NAMES[name]
    if name[:8].lower() == "grpc-web":
        return "GRPC-Web"
    known = PROTOCOL_NAMES.get(name.partition("-")[0].lower())
    if known is not None:
        return known
    return "TCP" if port.get("port") in WELL_KNOWN_PORTS else UNSUPPORTED


def protocol_known(port: dict) -> bool:
    """kube.ConvertProtocol(...) is not Unsupported: UDP, an appProtocol or port-name prefix
    Istio knows (`http-web`, `grpc`), or a well-known port."""
    return port_protocol(port) != UNSUPPORTED


def port_names(store: Store) -> Iterator[Message]:
    """service.PortNameAnalyzer: ports whose protocol Istio cannot infer (IST0118), ExternalName
    services with a `tcp` port (IST0150). The control plane's own Services are left out."""
    for svc in store.of("Service"):
        labels = svc.labels
        if "istio" in labels or labels.get("release") == "istio":
            continue
        if labels.get("gateway.istio.io/managed") in GATEWAY_MANAGED:
            continue
        external = svc.spec.get("type") == "ExternalName"
        for i, port in enumerate(as_list(svc.spec.get("ports"))):
            port = as_dict(port)
            if protocol_known(port) and not (port.get("name") == "tcp" and external):
                continue
            line = svc.line_of("spec", "ports", i, "port")
            if external:
                yield Message(msg.EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME, (), svc, line)
                continue
            target = port.get("targetPort")
            yield Message(msg.PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
                          (port.get("name") or "", port.get("port") or 0,
                           str(target if target is not None else 0)), svc, line)
