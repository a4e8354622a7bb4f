"""Which outbound listeners a sidecar gets, keyed as real istiod keys them
(pilot/pkg/networking/core/listener.go `buildSidecarOutboundListeners` with the default
catch-all egress listener, and `buildSidecarOutboundListener`): every Service port by the
protocol its name or appProtocol gives (sandbox/istiod/protocol.py)

- HTTP: one `0.0.0.0_<port>` listener shared by all HTTP Services on the port, RDS `<port>`;
- TCP (`https-`, `tls-`, `tcp-`, ...): a listener on the Service's ClusterIP,
  `<clusterIP>_<port>`, with a tcp_proxy to `outbound|<port>||<host>`;
- unnamed/unknown (protocol sniffing, `ListenerProtocolAuto`): a listener on the ClusterIP
  with an HTTP chain, RDS `<host>:<port>` (`buildSidecarOutboundHTTPListenerOpts`), and a
  TCP chain to the Service's cluster;
- UDP: none.
The first Service to claim a (bind, port) keeps it; real istiod merges some conflicts
(HTTPOverTCP, TCPOverTCP with CIDR matches) that the sandbox's scenarios never produce."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.istiod.mesh import Mesh, Service
from sandbox.istiod.protocol import AUTO, HTTP, TCP, listener_protocol

WILDCARD = "0.0.0.0"
# An outbound HTTP listener on 0.0.0.0 may not take the static (15021, 15090) or virtual
# (15001, 15006) listeners' ports: pilot/pkg/model/context.go `conflictWithReservedListener`.
RESERVED_PORTS = frozenset({15001, 15006, 15021, 15090})


@dataclass(frozen=True)
class OutboundListener:
    bind: str
    port: int
    protocol: str  # HTTP | TCP | AUTO
    service: Service  # the Service that claimed the listener

    @property
    def name(self) -> str:
        return f"{self.bind}_{self.port}"

    @property
    def rds(self) -> str | None:
        """The route config the HTTP chain names; sniffed ports on a ClusterIP get their own."""
        if self.protocol == HTTP:
            return str(self.port)
        if self.protocol == AUTO:
            return f"{self.service.fqdn}:{self.port}" if self.bind != WILDCARD else str(self.port)
        return None


def outbound_listeners(mesh: Mesh) -> list[OutboundListener]:
    """The sidecar outbound listeners for the mesh's Services, by port then address."""
    claimed: dict[tuple[str, int], OutboundListener] = {}
    for service in mesh.services:
        for port in service.ports:
            number = int(port["port"])
            protocol = listener_protocol(port)
            if protocol == HTTP:
                if number in RESERVED_PORTS:
                    continue
                bind = WILDCARD
            elif protocol in (TCP, AUTO):
                # Headless Services' per-endpoint listeners are not modelled: 0.0.0.0.
                bind = service.cluster_ip or WILDCARD
            else:
                continue
            claimed.setdefault((bind, number), OutboundListener(bind, number, protocol, service))
    return sorted(claimed.values(), key=lambda l: (l.port, l.bind != WILDCARD, l.bind))


def route_names(mesh: Mesh) -> list[str]:
    """The route configs the sidecar's outbound listeners ask RDS for."""
    names = []
    for listener in outbound_listeners(mesh):
        if listener.rds is not None and listener.rds not in names:
            names.append(listener.rds)
    return names
