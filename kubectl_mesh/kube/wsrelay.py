"""The WebSocket port-forward on a local port: a 127.0.0.1 listener whose connections are
relayed, each over its own port-forward WebSocket. For tools that want a local port, and
behind a proxy.

It is a `kube.forwardport.ForwardedPort` (the listener, its accept loop, one pipe per
connection, no half-close: when either side ends both do, as containerd does in real
clusters) over a `kube.portforward.ChannelDialer` (a port-forward WebSocket used as a socket,
`wschannel.ChannelSocket`, the first one opened by `start()`, renewed on 401; its error
channel ends the connection).
"""

from __future__ import annotations

from typing import NamedTuple

from kubectl_mesh.kube.forwardport import ForwardedPort
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.portforward import ChannelDialer
from kubectl_mesh.kube.wschannel import ChannelSocket


class _Pod(NamedTuple):
    name: str
    namespace: str


class WebSocketForward:
    """A ForwardedPort on 127.0.0.1 whose channel is a fresh port-forward WebSocket per
    accepted connection; what went wrong (a WebSocket that could not be opened, what the
    error channels said) is recorded for `errors()`."""

    via = "websocket"

    def __init__(self, config: ApiConfig, namespace: str, name: str, port: int,
                 timeout: float | None):
        self.config, self.namespace, self.name, self.port = config, namespace, name, port
        self.timeout = timeout
        self.local_port = 0
        self._dialer = ChannelDialer(config, _Pod(name, namespace), port, timeout)
        self.record_error = self._dialer.record_error
        self._listening: ForwardedPort | None = None

    def connect(self) -> ChannelSocket:
        """The WebSocket for an accepted connection; a failure is recorded, and the local
        connection closed."""
        try:
            return self._dialer.connect()
        except Exception as e:
            self.record_error(str(e))
            raise

    def start(self) -> None:
        # Open the first WebSocket now, so RBAC denials, refusals and an unreachable API
        # server surface here as errors; it then serves the first accepted connection.
        self._dialer.start()
        # never a wider address than 127.0.0.1: the admin API has no auth
        self._listening = ForwardedPort(self, "127.0.0.1", 0, threads="pf").start()
        self.local_port = self._listening.local_port

    def errors(self) -> list[str]:
        return self._dialer.errors()

    def close(self) -> None:
        """Stop accepting, end every relay and wait for their threads. Idempotent."""
        if self._listening is not None:
            self._listening.close()
        self._dialer.close()
