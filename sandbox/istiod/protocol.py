"""A Service port's protocol as real istiod reads it from the port's name or appProtocol
(pkg/config/kube/conversion.go `ConvertProtocol`, pkg/config/protocol/instance.go `Parse`) and
the outbound listener it gets (pilot/pkg/networking/networking.go
`ModelProtocolToListenerProtocol`)."""

from __future__ import annotations

_NAMES = {
    "tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web", "http": "HTTP",
    "http_proxy": "HTTP_PROXY", "http2": "HTTP2", "https": "HTTPS", "tls": "TLS",
    "mongo": "Mongo", "redis": "Redis", "mysql": "MySQL",
}
_APP_PROTOCOLS = {"kubernetes.io/h2c": "HTTP2", "kubernetes.io/ws": "HTTP",
                  "kubernetes.io/wss": "HTTPS"}
# ConvertProtocol's wellKnownPorts: SMTP, DNS, MySQL, MongoDB are TCP when unnamed.
_WELL_KNOWN_TCP = {25, 53, 3306, 27017}
_HTTP = {"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web"}
_TCP = {"TCP", "HTTPS", "TLS", "Mongo", "Redis", "MySQL"}

HTTP = "HTTP"  # one 0.0.0.0_<port> listener per port, RDS `<port>`
TCP = "TCP"  # a listener on the Service's ClusterIP with a tcp_proxy
AUTO = "AUTO"  # sniffed: a ClusterIP listener with a TCP and an HTTP filter chain
UDP = "UDP"  # no outbound listener


def port_protocol(port: dict) -> str:
    """Istio's protocol instance (`HTTP`, `TCP`, `Unsupported`, ...) of a Service port."""
    if str(port.get("protocol", "TCP")).upper() == "UDP":
        return "UDP"
    name = port.get("name") or ""
    app = port.get("appProtocol")
    if app is not None:
        name = app
        if app in _APP_PROTOCOLS:
            return _APP_PROTOCOLS[app]
    if name[:8].lower() == "grpc-web":
        return "GRPC-Web"
    prefix = name.split("-", 1)[0].lower()
    found = _NAMES.get(prefix, "Unsupported")
    if found == "Unsupported" and int(port.get("port", 0)) in _WELL_KNOWN_TCP:
        return "TCP"
    return found


def listener_protocol(port: dict) -> str:
    """HTTP, TCP, AUTO (protocol sniffing) or UDP for a Service port's outbound listener."""
    instance = port_protocol(port)
    if instance in _HTTP:
        return HTTP
    if instance in _TCP:
        return TCP
    if instance == "UDP":
        return UDP
    return AUTO


def http_or_sniffed(port: dict) -> bool:
    """`Instance.IsHTTPOrSniffed`: the port gets virtual hosts in the outbound route configs."""
    return listener_protocol(port) in (HTTP, AUTO)
