"""The WebSocket port-forward: a 127.0.0.1 listener whose connections are relayed, each over
its own `v4.channel.k8s.io` WebSocket to `/api/v1/namespaces/NS/pods/NAME/portforward`.

v4 framing: every binary message starts with a channel byte (0 = data, 1 = error for the
first port); the first message on each channel is exactly the 3-byte port prefix (channel +
port as uint16 little-endian). There is no half-close: when either side ends, both do (as
containerd does in real clusters).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from urllib.parse import urlsplit

import websocket

from kubectl_mesh.errors import UnreachableError
from kubectl_mesh.kube.api import pod_path, proxies_for, status_error, with_renewal
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.kubeconfigcheck import redact
from kubectl_mesh.kube.wschannel import WebSocketForbidden, WebSocketRefused, tls_context

log = logging.getLogger(__name__)

SUBPROTOCOL = "v4.channel.k8s.io"
DATA, ERROR = 0, 1
_CHUNK = 256 * 1024


def connect(config: ApiConfig, namespace: str, name: str, port: int, timeout: float | None,
            ssl_context: ssl.SSLContext | None = None) -> websocket.WebSocket:
    """An open port-forward WebSocket, or ForbiddenError / NotFoundError / UnreachableError /
    WebSocketRefused. Pass `ssl_context` (from `tls_context(config)`) to reuse one."""
    path = pod_path(namespace, name, "portforward")
    url = "ws" + config.server[len("http"):] + f"{path}?ports={port}"
    headers = [f"{k}: {v}" for k, v in config.auth_headers()]
    sslopt: dict = {"context": ssl_context or tls_context(config)}
    if config.tls_server_name:
        sslopt["server_hostname"] = config.tls_server_name
    options = proxy_options(config)
    try:
        ws = websocket.create_connection(
            url, timeout=timeout, header=headers, subprotocols=[SUBPROTOCOL], sslopt=sslopt,
            enable_multithread=True, skip_utf8_validation=True, suppress_origin=True, **options)
    except websocket.WebSocketBadStatusException as e:
        body = e.resp_body or b""
        if e.status_code in (401, 404):
            raise status_error(e.status_code, body, "GET", path, config) from e
        if e.status_code == 403 and b"is forbidden" in body:
            raise WebSocketForbidden(status_error(e.status_code, body, "GET", path, config)) from e
        raise WebSocketRefused(f"HTTP {e.status_code}: {_short(body)}") from e
    except (ssl.SSLError, ssl.CertificateError) as e:
        raise UnreachableError(f"TLS handshake with the API server {config.where} failed: {e}",
                               hint="check the cluster's certificate-authority in the "
                                    "kubeconfig") from e
    except websocket.WebSocketTimeoutException as e:
        raise UnreachableError(f"port-forward to pod {name}.{namespace}: the API server "
                               f"{config.where} did not answer within {timeout}s",
                               hint="retry, or raise --request-timeout") from e
    except websocket.WebSocketException as e:  # a 101 with a foreign subprotocol, bad headers
        raise WebSocketRefused(str(e)) from e
    except OSError as e:  # refused, reset, DNS, timeouts of the TCP connect
        raise UnreachableError(f"cannot reach the API server {config.where} for a port-forward "
                               f"to pod {name}.{namespace}: {e.strerror or e}",
                               hint="is the cluster running? check --context / --kubeconfig") from e
    ws.settimeout(None)  # an idle keep-alive connection is fine; the client has its timeouts
    return ws


def proxy_options(config: ApiConfig) -> dict:
    """websocket-client's options for the API server's proxy: http:// (CONNECT) or socks5://
    (with python-socks); an https:// proxy it cannot speak is an error, never a direct
    connection."""
    from kubectl_mesh.errors import BadInputError
    from kubectl_mesh.kube.api import _needs_module

    proxy = proxies_for(config).get("https")
    if not proxy:
        return {}
    parts = urlsplit(proxy)
    if parts.scheme in ("socks5", "socks5h", "socks4", "socks4a"):
        _needs_module("python_socks", "python-socks", config)
    elif parts.scheme != "http":
        raise BadInputError(f"the proxy {redact(proxy)} (cluster {config.cluster!r}) is "
                            f"{parts.scheme}://, which the port-forward and exec WebSockets "
                            "cannot go through", hint="use an http:// or socks5:// proxy-url")
    options = {"http_proxy_host": parts.hostname, "http_proxy_port": parts.port or 8080,
               "proxy_type": parts.scheme}
    if parts.username:
        options["http_proxy_auth"] = (parts.username, parts.password or "")
    return options


def _short(body: bytes) -> str:
    import json

    try:
        return json.loads(body).get("message") or body.decode(errors="replace")[:200]
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200]


class _Relay:
    """One accepted local connection and its WebSocket; owns one thread."""

    def __init__(self, forward: WebSocketForward, local: socket.socket,
                 ws: websocket.WebSocket | None):
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
                with contextlib.suppress(Exception):
                    self.ws.shutdown()
            self.forward.discard(self)

    def _remote_to_local(self) -> None:
        prefix = {DATA: 2, ERROR: 2}  # bytes of the port prefix still to skip per channel
        ws = self.ws
        while True:
            try:
                opcode, frame = ws.recv_data()
            except (websocket.WebSocketConnectionClosedException, OSError):
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE or not frame:
                return
            channel, payload = frame[0], memoryview(frame)[1:]
            skip = min(prefix.get(channel, 0), len(payload))
            if skip:
                prefix[channel] -= skip
                payload = payload[skip:]
            if not payload:
                continue
            if channel == DATA:
                try:
                    self.local.sendall(payload)
                except OSError:
                    return
            elif channel == ERROR:
                self.forward.record_error(bytes(payload).decode(errors="replace").strip())
                return

    def _local_to_remote(self) -> None:
        try:
            while not self._closed.is_set():
                chunk = self.local.recv(_CHUNK)
                if not chunk:
                    break
                self.ws.send(b"\x00" + chunk, websocket.ABNF.OPCODE_BINARY)
            with contextlib.suppress(Exception):
                self.ws.send_close()
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Wake both directions: shutdown() interrupts blocked reads, close() would not."""
        self._closed.set()
        with contextlib.suppress(Exception):
            self.local.shutdown(socket.SHUT_RDWR)
        sock = getattr(self.ws, "sock", None)
        if sock is not None:
            with contextlib.suppress(Exception):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # not SSLSocket's: keeps _sslobj


class WebSocketForward:
    """The listener, its accept thread and the relays of the accepted connections."""

    via = "websocket"

    def __init__(self, config: ApiConfig, namespace: str, name: str, port: int,
                 timeout: float | None):
        self.config, self.namespace, self.name, self.port = config, namespace, name, port
        self.timeout = timeout
        self.local_port = 0
        self._tls = tls_context(config) if config.server.startswith("https") else None
        self._lock = threading.Lock()
        self._relays: set[_Relay] = set()
        self._errors: list[str] = []
        self._spare: websocket.WebSocket | None = None
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._closing = False

    def connect(self) -> websocket.WebSocket:
        return with_renewal(self.config, lambda: connect(
            self.config, self.namespace, self.name, self.port, self.timeout, self._tls))

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

    def record_error(self, message: str) -> None:
        log.debug("port-forward to %s.%s: %s", self.name, self.namespace, message)
        with self._lock:
            self._errors.append(message)

    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

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
            with contextlib.suppress(Exception):
                spare.shutdown()


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()

