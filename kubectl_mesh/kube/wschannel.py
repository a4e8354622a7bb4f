"""A port-forward WebSocket used directly as the client's socket: no local listener, no relay
thread, no socketpair copies (the performance notes measure the relay at 2-5x the cost).

`ChannelSocket` speaks `v4.channel.k8s.io` itself on one TLS (or plain) connection to the API
server and offers what `http.client` needs of a socket: `sendall()`, `makefile("rb")`,
`settimeout()`, `close()`. Reads parse frames straight from the connection into the
caller's buffer; a message on the error channel (e.g. nothing listens on the pod's port) is
recorded and ends the stream. Written here rather than with `websocket-client`, whose import
alone costs ~30 ms of a one-shot command's start-up.

v4 framing: every binary message starts with a channel byte (0 = data, 1 = error for the
first port); the first message on each channel is the 3-byte port prefix.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

SUBPROTOCOL = "v4.channel.k8s.io"
DATA, ERROR = 0, 1
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_BINARY, _OP_CLOSE, _OP_PING = 0x0, 0x2, 0x8, 0x9
_READ_BUFFER = 256 * 1024
_MAX_HEAD = 64 * 1024  # an upgrade answer's headers; more is not an API server


class WebSocketRefused(Exception):
    """The API server answered the upgrade with something other than 101 (not an auth error)."""


class WebSocketForbidden(WebSocketRefused):
    """RBAC refused the WebSocket upgrade (403). The upgrade is a GET, authorized as `get`, and
    from 1.35 also as `create`; kubectl's SPDY POST needs `create` only, so a Role that lets
    `kubectl port-forward` work may still refuse this path. kubectl falls back to SPDY on any
    failed upgrade (client-go tools/portforward/fallback_dialer.go, kubectl
    pkg/cmd/portforward `shouldFallback`: `IsUpgradeFailure`), and so does the caller."""

    def __init__(self, error):
        super().__init__(f"HTTP 403: {error.message}")
        self.error = error  # the ForbiddenError this 403 means


class ChannelSocket:
    """One port-forward WebSocket to one pod port, as a byte-stream socket."""

    def __init__(self, sock: socket.socket, pending: bytes, on_error: Callable[[str], None]):
        self._sock = sock
        self._buf = bytearray(pending)  # bytes read past the upgrade answer / a frame header
        self._left = 0  # payload bytes of the current frame not read yet
        self._channel = -1  # channel of the current message
        self._prefix = {DATA: 2, ERROR: 2}  # port-prefix bytes still to skip per channel
        self._on_error = on_error
        self._eof = False
        # A reader answering a ping and a writer in another thread (a local port piped to
        # the channel) must not interleave their frames.
        self._send_lock = threading.Lock()

    # -- what http.client uses -------------------------------------------------------------

    def sendall(self, data) -> None:
        """Send `data` as one masked binary message on the data channel."""
        frame = _client_frame(b"\x00" + bytes(data))
        with self._send_lock:
            self._sock.sendall(frame)

    def makefile(self, mode: str = "rb", buffering: int | None = None) -> io.BufferedReader:
        if "w" in mode:
            raise ValueError("a ChannelSocket is read through makefile('rb') only")
        return io.BufferedReader(_Reader(self), _READ_BUFFER)

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        """Wake a read blocked in another thread (close() would not); the base socket's
        shutdown, not SSLSocket's, which would try to unwrap TLS first."""
        with _quiet():
            socket.socket.shutdown(self._sock, how)

    def close(self) -> None:
        with _quiet():
            self._sock.sendall(_client_frame(struct.pack("!H", 1000), _OP_CLOSE))
        with _quiet():
            self._sock.close()

    # -- frames ----------------------------------------------------------------------------

    def readinto(self, view: memoryview) -> int:
        """Data-channel bytes into `view`; 0 at the end of the stream."""
        while not self._eof:
            if self._left == 0:
                self._next_frame()
            elif self._channel != DATA:
                self._error_message()
            elif self._prefix[DATA]:  # the port prefix opens the channel: not data
                drop = min(self._prefix[DATA], self._left)
                self._read_exact(drop)
                self._prefix[DATA] -= drop
                self._left -= drop
            else:
                return self._read_payload(view[:min(len(view), self._left)])
        return 0

    def _next_frame(self) -> None:
        head = self._read_exact(2)
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read_exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read_exact(8))[0]
        if head[1] & 0x80:  # RFC 6455: a server never masks
            raise ConnectionError("the API server sent a masked WebSocket frame")
        if opcode == _OP_CLOSE:
            self._eof = True
            return
        if opcode == _OP_PING:
            payload = bytes(self._read_exact(length))
            with self._send_lock:
                self._sock.sendall(_client_frame(payload, 0xA))
            return
        if opcode not in (_OP_BINARY, _OP_CONT):
            self._read_exact(length)  # text / pong: not part of the stream
            return
        if opcode == _OP_BINARY:
            if length == 0:
                return
            self._channel = self._read_exact(1)[0]
            length -= 1
        self._left = length

    def _error_message(self) -> None:
        text = bytes(self._read_exact(self._left))
        self._left = 0
        channel = self._channel
        skip = min(self._prefix.get(channel, 0), len(text))
        if skip:
            self._prefix[channel] -= skip
            text = text[skip:]
        if channel == ERROR and text:
            self._on_error(text.decode(errors="replace").strip())
            self._eof = True  # like the relay: an error ends the connection

    def _read_payload(self, view: memoryview) -> int:
        """Up to len(view) bytes of the current frame: buffered ones first, then recv_into."""
        if self._buf:
            n = min(len(view), len(self._buf))
            view[:n] = self._buf[:n]
            del self._buf[:n]
        else:
            n = self._sock.recv_into(view)
            if not n:
                raise ConnectionResetError("the API server closed the port-forward connection")
        self._left -= n
        return n

    def _read_exact(self, n: int) -> bytearray:
        while len(self._buf) < n:
            chunk = self._sock.recv(max(n - len(self._buf), 16 * 1024))
            if not chunk:
                raise ConnectionResetError("the API server closed the port-forward connection")
            self._buf += chunk
        out = self._buf[:n]
        del self._buf[:n]
        return out


class _Reader(io.RawIOBase):
    """The raw stream under `makefile()`; closing it leaves the connection open (keep-alive)."""

    def __init__(self, channel: ChannelSocket):
        self._channel = channel

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        with memoryview(b) as view:
            return self._channel.readinto(view.cast("B"))


def tls_context(config) -> ssl.SSLContext:
    """The kubeconfig's TLS context, checking the certificate against `tls-server-name`."""
    ctx = config.ssl_context()
    if config.tls_server_name:
        ctx.check_hostname = not config.insecure
    return ctx


class TlsReuse:
    """One TLS context for every port-forward to an API server, and the last TLS session it
    got: the next handshake resumes it (no certificate chain to verify, a fraction of the CPU
    on both ends - each port-forward is a new connection). Shared by threads."""

    def __init__(self, config):
        self.context = tls_context(config)
        self.session: ssl.SSLSession | None = None


def dial(config, namespace: str, name: str, port: int, timeout: float | None,
         tls: TlsReuse | None, on_error: Callable[[str], None]) -> ChannelSocket:
    """An open port-forward to `name`.`namespace`:`port`, or ForbiddenError (401) /
    NotFoundError / UnreachableError / WebSocketRefused or WebSocketForbidden (the caller may
    fall back to kubectl then)."""
    from kubectl_mesh.kube.api import pod_path, status_error, transport_error

    parts = urlsplit(config.server)
    secure = parts.scheme == "https"
    host, server_port = parts.hostname or "", parts.port or (443 if secure else 80)
    path = pod_path(namespace, name, "portforward")
    target = f"{parts.path.rstrip('/')}{path}?ports={port}"
    doing = f" for a port-forward to pod {name}.{namespace}"
    try:
        sock = socket.create_connection((host, server_port), timeout=timeout)
    except OSError as e:
        raise transport_error(e, config.where, timeout, doing=doing) from e
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if secure:
            tls = tls or TlsReuse(config)
            sock = tls.context.wrap_socket(sock, server_hostname=config.tls_server_name or host,
                                           session=tls.session)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 f"Sec-WebSocket-Protocol: {SUBPROTOCOL}", "User-Agent: kubectl-mesh"]
        lines += [f"{k}: {v}" for k, v in config.auth_headers()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, headers, rest = _read_answer(sock)
        if secure and sock.session is not None:  # TLS 1.3 tickets come after the handshake
            tls.session = sock.session
        if status != 101:
            body = _read_body(sock, headers, rest)
            if status in (401, 404):
                raise status_error(status, body, "GET", path, config)
            if status == 403 and b"is forbidden" in body:
                raise WebSocketForbidden(status_error(status, body, "GET", path, config))
            raise WebSocketRefused(f"HTTP {status}: {_short(body)}")
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != accept or \
                headers.get("sec-websocket-protocol") != SUBPROTOCOL:
            raise WebSocketRefused(f"the upgrade answer is not a {SUBPROTOCOL} WebSocket")
        sock.settimeout(timeout)
        return ChannelSocket(sock, rest, on_error)
    except OSError as e:  # TLS failures and timeouts included
        sock.close()
        raise transport_error(e, config.where, timeout, doing=doing) from e
    except BaseException:
        sock.close()
        raise


def _read_answer(sock) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, bytes after the blank line) of the upgrade answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > _MAX_HEAD:
            raise ConnectionResetError("the API server closed the connection during the upgrade")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        raise WebSocketRefused(f"not an HTTP answer: {status_line[:80]!r}") from None
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, rest


def _read_body(sock, headers: dict[str, str], rest: bytes) -> bytes:
    """The (short) body of a refused upgrade, for the error message."""
    try:
        length = min(int(headers.get("content-length", "0")), _MAX_HEAD)
    except ValueError:
        length = 0
    with _quiet():
        while len(rest) < length:
            chunk = sock.recv(length - len(rest))
            if not chunk:
                break
            rest += chunk
    return rest[:length] if length else rest


def _client_frame(payload: bytes, opcode: int = _OP_BINARY) -> bytes:
    """A masked (client → server) final frame; XOR as one big integer (no per-byte loop)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = os.urandom(4)
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")
    return head + mask + masked


def _short(body: bytes) -> str:
    import json

    try:
        return json.loads(body).get("message") or body.decode(errors="replace")[:200]
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200]


class _quiet:
    """`with _quiet():` ignore OSError (closing a connection that is already gone)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb) -> bool:
        return kind is not None and issubclass(kind, OSError)
