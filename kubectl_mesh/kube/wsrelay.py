"""The WebSocket port-forward on a local port: a 127.0.0.1 listener whose connections are
relayed, each over its own port-forward WebSocket (`wschannel.open_port_forward`; the
channels read with `kube.wsframes`). For tools that want a local port, and behind a proxy.

There is no half-close: when either side ends, both do (as containerd does in real clusters).
"""

from __future__ import annotations

import contextlib
import socket
import threading

from kubectl_mesh.kube.api import with_renewal
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.wschannel import (
    DATA,
    ForwardErrors,
    open_port_forward,
    read_port_forward_error,
)
from kubectl_mesh.kube.wsdial import TlsReuse
from kubectl_mesh.kube.wsframes import ChannelReader, WebSocket

_CHUNK = 256 * 1024


class _Relay:
    """One accepted local connection and its WebSocket; owns one thread."""

    def __init__(self, forward: WebSocketForward, local: socket.socket, ws: WebSocket | None):
        self.forward, self.local, self.ws = forward, local, ws
        self._closed = threading.Event()
        self.thread = threading.Thread(target=self._run, name="kubectl-mesh-pf-relay", daemon=True)

    def _run(self) -> None:
        sender = None
        try:
            if self.ws is None:
                self.ws = self.forward.connect()
            if self._closed.is_set():
                return
            sender = threading.Thread(target=self._local_to_remote, daemon=True,
                                      name="kubectl-mesh-pf-send")
            sender.start()
            self._remote_to_local()
        except Exception as e:
            self.forward.record_error(str(e))
        finally:
            self.abort()
            if sender is not None:
                sender.join()
            _close_quietly(self.local)
            if self.ws is not None:
                self.ws.abort()
                self.ws.close()
            self.forward.discard(self)

    def _remote_to_local(self) -> None:
        channels = ChannelReader(self.ws, port_prefix=True)
        try:
            while (channel := channels.next_channel()) >= 0:
                if channel != DATA:
                    if read_port_forward_error(channels, self.forward.record_error):
                        return
                    continue
                _, payload = channels.read()
                if payload:
                    self.local.sendall(payload)
        except (EOFError, OSError):
            return

    def _local_to_remote(self) -> None:
        try:
            while not self._closed.is_set():
                chunk = self.local.recv(_CHUNK)
                if not chunk:
                    break
                self.ws.send_channel(DATA, chunk)
            self.ws.send_close()
        except OSError:
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Wake both directions: shutdown() interrupts blocked reads, close() would not."""
        self._closed.set()
        with contextlib.suppress(Exception):
            self.local.shutdown(socket.SHUT_RDWR)
        if self.ws is not None:
            self.ws.abort()


class WebSocketForward:
    """The listener, its accept thread and the relays of the accepted connections."""

    via = "websocket"

    def __init__(self, config: ApiConfig, namespace: str, name: str, port: int,
                 timeout: float | None):
        self.config, self.namespace, self.name, self.port = config, namespace, name, port
        self.timeout = timeout
        self.local_port = 0
        self._tls = TlsReuse(config) if config.server.startswith("https") else None
        self._lock = threading.Lock()
        self._relays: set[_Relay] = set()
        self._errors = ForwardErrors(f"{name}.{namespace}")
        self.record_error = self._errors.record
        self._spare: WebSocket | None = None
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._closing = False

    def connect(self) -> WebSocket:
        ws = with_renewal(self.config, lambda: open_port_forward(
            self.config, self.namespace, self.name, self.port, self.timeout, self._tls))
        ws.settimeout(None)  # an idle keep-alive connection is fine; the client has its timeouts
        return ws

    def start(self) -> None:
        # Open the first WebSocket now, so RBAC denials, refusals and an unreachable API
        # server surface here as errors; it then serves the first accepted connection.
        self._spare = self.connect()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener = listener
        listener.bind(("127.0.0.1", 0))  # never a wider address: the admin API has no auth
        listener.listen(64)
        self.local_port = listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"kubectl-mesh-pf-accept-{self.local_port}")
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # the listener was shut down
            with self._lock:
                if self._closing:
                    _close_quietly(conn)
                    return
                spare, self._spare = self._spare, None
                relay = _Relay(self, conn, spare)
                self._relays.add(relay)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            relay.thread.start()

    def errors(self) -> list[str]:
        return self._errors.messages()

    def discard(self, relay: _Relay) -> None:
        with self._lock:
            self._relays.discard(relay)

    def close(self) -> None:
        """Stop accepting, end every relay and wait for their threads. Idempotent."""
        with self._lock:
            self._closing = True
            relays, self._relays = list(self._relays), set()
            spare, self._spare = self._spare, None
        if self._listener is not None:
            with contextlib.suppress(Exception):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
            _close_quietly(self._listener)
        if self._acceptor is not None and self._acceptor is not threading.current_thread():
            self._acceptor.join()
        for relay in relays:
            relay.abort()
        for relay in relays:
            if relay.thread.ident is not None and relay.thread is not threading.current_thread():
                relay.thread.join()
        if spare is not None:
            spare.abort()
            spare.close()


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()

