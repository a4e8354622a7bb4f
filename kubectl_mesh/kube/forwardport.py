"""A local port whose connections are each piped to a channel to a pod port: what a browser
(or any tool that wants an address) connects to.

`ForwardedPort(channel, address, port)` listens on `address:port` (port 0 = a free one) and,
for every accepted connection, takes `channel.connect()` – the one way to a pod port
(`kube.portforward.open_channel`: a port-forward WebSocket, the relay behind a proxy, or
kubectl port-forward) – and copies bytes both ways, one thread per direction. There is no
half-close: when either side ends, both do (as containerd does). `close()` stops listening
first, so the port is closed at once, then ends every pipe. `kube.wsrelay` is this over a
fresh port-forward WebSocket per connection.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from typing import Any, Callable, Protocol

from kubectl_mesh.errors import UsageError

_CHUNK = 256 * 1024
_JOIN_SECONDS = 2.0  # a pipe still dialling the channel ends on its own once it is back


class Channel(Protocol):
    def connect(self) -> Any: ...

    def errors(self) -> list[str]: ...


def listen_address(text: str) -> str:
    """`--address`: an IP address, or `localhost` (127.0.0.1). UsageError otherwise."""
    if text == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise UsageError(f"invalid address {text!r}: give an IP address or localhost",
                         hint="e.g. --address 127.0.0.1 (the default) or --address ::1") from None


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def url_host(address: str) -> str:
    """How a URL names the listening address: an unspecified one (0.0.0.0, ::) is reached
    on loopback; IPv6 in brackets."""
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified:
        ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
    return f"[{ip}]" if ip.version == 6 else str(ip)


class ForwardedPort:
    """The listener, its accept thread and the pipes of the accepted connections."""

    def __init__(self, channel: Channel, address: str = "127.0.0.1", port: int = 0, *,
                 on_error: Callable[[str], None] | None = None, threads: str = "forward"):
        self.channel = channel
        self.threads = threads  # the threads are named kubectl-mesh-<threads>-...
        self.address = address
        self.requested_port = port
        self.local_port = 0
        self._on_error = on_error
        self._lock = threading.Lock()
        self._pipes: set[_Pipe] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._closing = False
        self._errors_seen = 0

    def start(self) -> ForwardedPort:
        family = socket.AF_INET6 if ipaddress.ip_address(self.address).version == 6 \
            else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.address, self.requested_port))
            listener.listen(64)
        except OSError as e:
            listener.close()
            port = self.requested_port or "a free port"
            raise UsageError(f"cannot listen on {self.address} port {port}: "
                             f"{e.strerror or e}",
                             hint="choose another --port, or leave it out for a free one"
                             if self.requested_port else "check --address") from e
        self._listener = listener
        self.local_port = listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"kubectl-mesh-{self.threads}-listen-"
                                               f"{self.local_port}")
        self._acceptor.start()
        return self

    def __enter__(self) -> ForwardedPort:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

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
                pipe = _Pipe(self, conn)
                self._pipes.add(pipe)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pipe.thread.start()

    def report(self, message: str) -> None:
        """A connection could not be carried: `on_error`, each message once in a row."""
        import logging
        logging.getLogger(__name__).debug("forwarded port %d: %s", self.local_port, message)
        if self._on_error is not None:
            self._on_error(message)

    def report_channel_errors(self) -> None:
        """What the channel recorded since the last look (e.g. nothing listens in the pod)."""
        errors = self.channel.errors()
        with self._lock:
            new, self._errors_seen = errors[self._errors_seen:], len(errors)
        for message in new:
            self.report(message)

    def discard(self, pipe: _Pipe) -> None:
        with self._lock:
            self._pipes.discard(pipe)

    def close(self) -> None:
        """Stop listening (the port is closed when this returns), end every pipe and wait
        a moment for their threads. Idempotent."""
        with self._lock:
            self._closing = True
            pipes, self._pipes = list(self._pipes), set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
            _close_quietly(self._listener)
        if self._acceptor is not None and self._acceptor is not threading.current_thread():
            self._acceptor.join()
        for pipe in pipes:
            pipe.abort()
        for pipe in pipes:
            if pipe.thread.ident is not None and pipe.thread is not threading.current_thread():
                pipe.thread.join(_JOIN_SECONDS)


class _Pipe:
    """One accepted connection and its connection over the channel; one thread per direction."""

    def __init__(self, port: ForwardedPort, local: socket.socket):
        self.port, self.local = port, local
        self.remote = None
        self._closed = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"kubectl-mesh-{port.threads}-pipe")

    def _run(self) -> None:
        sender = None
        try:
            try:
                remote = self.port.channel.connect()
            except Exception as e:  # noqa: BLE001 - reported; the browser sees a closed connection
                self.port.report(str(e))
                return
            self.remote = remote
            if self._closed.is_set():
                return
            with contextlib.suppress(OSError):
                remote.settimeout(None)  # an idle keep-alive connection is the browser's call
            sender = threading.Thread(target=self._local_to_remote, daemon=True,
                                      name=f"kubectl-mesh-{self.port.threads}-send")
            sender.start()
            self._remote_to_local()
        finally:
            self.abort()
            if sender is not None:
                sender.join()
            _close_quietly(self.local)
            if self.remote is not None:
                with contextlib.suppress(Exception):
                    self.remote.close()
            self.port.discard(self)
            self.port.report_channel_errors()

    def _remote_to_local(self) -> None:
        reader = self.remote.makefile("rb")
        try:
            while True:
                data = reader.read1(_CHUNK)
                if not data:
                    return
                self.local.sendall(data)
        except (OSError, EOFError, ValueError):
            return
        finally:
            with contextlib.suppress(Exception):
                reader.close()

    def _local_to_remote(self) -> None:
        try:
            while not self._closed.is_set():
                data = self.local.recv(_CHUNK)
                if not data:
                    # the client is done: say so (a WebSocket's close frame), then end both
                    self.remote.shutdown(socket.SHUT_WR)
                    break
                self.remote.sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Wake both directions: shutdown() interrupts blocked reads, close() would not."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self.local.shutdown(socket.SHUT_RDWR)
        remote = self.remote
        if remote is not None:
            with contextlib.suppress(Exception):
                remote.shutdown(socket.SHUT_RDWR)


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
