"""A lean exec/attach client over WebSocket (`v5.channel.k8s.io`, else `v4.channel.k8s.io`).

Each binary message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 status (the
exit `Status` JSON), 4 resize; v5 adds `[255, ch]` = close channel ch (stdin EOF). Output is
handed to callbacks as it arrives, so a capture never holds more than one message in memory.
Errors before the upgrade are translated once, here (403 -> ForbiddenError, ...).

Where the API server refuses the WebSocket upgrade - a 403 included: from 1.35 the upgrade, a
GET, also needs `create`, and a Role with `create pods/exec` alone refuses it - or an HTTP
proxy strips it, `kubectl exec`/`kubectl attach` carry the stream instead (SPDY, a POST that
needs `create` only: `kube.kubectlexec`), as kubectl itself falls back, said once on stderr.

websocket-client does the handshake (it reads the 101 answer byte by byte, so nothing of the
stream is buffered in it) and the sends; frames are read by `FrameReader` straight off the
socket into one large buffer, payloads handed out as views of it (websocket-client's
`recv_data` joins 16 KiB reads and slices off the channel byte, copying every byte three
times): 10-30 % less client CPU per captured MB (BENCHMARKS.md, sniff).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence
from urllib.parse import urlencode

import websocket

from kubectl_mesh.errors import MeshError, UnreachableError
from kubectl_mesh.kube.api import pod_path, status_error, with_renewal
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.wsrelay import proxy_options, tls_context

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

OnData = Callable[[memoryview], None]  # valid only during the call: copy what you keep
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
READ_BUFFER = 1 << 20
MAX_FRAME = 64 << 20  # a sanity bound: no exec/attach output frame is anywhere near this


@dataclass(frozen=True)
class ExitStatus:
    """How the remote command ended: exit code (None = unknown) and the Status message."""

    code: int | None
    message: str = ""
    reason: str = ""

    @classmethod
    def from_status(cls, raw: bytes) -> "ExitStatus":
        try:
            status = json.loads(raw)
        except ValueError:
            return cls(None, raw.decode(errors="replace"))
        if status.get("status") == "Success":
            return cls(0)
        causes = (status.get("details") or {}).get("causes") or []
        code = next((c.get("message") for c in causes if c.get("reason") == "ExitCode"), None)
        return cls(int(code) if code and str(code).isdigit() else None,
                   status.get("message", ""), status.get("reason", ""))


class ExecFailed(MeshError):
    """The container runtime could not start the command (e.g. executable not found)."""


def _message(body: bytes) -> str:
    try:
        return json.loads(body).get("message") or body.decode(errors="replace")
    except (ValueError, AttributeError):
        return body.decode(errors="replace")


class FrameReader:
    """RFC 6455 frames from a (TLS) socket: `recv_into` one buffer, payloads as memoryviews.

    A view is valid until the next `next_frame()`. A frame larger than the buffer gets a
    bigger one (up to MAX_FRAME); the unread tail moves to the front when the buffer runs out.
    """

    def __init__(self, sock, size: int = READ_BUFFER):
        self.sock = sock
        self._buf = bytearray(size)
        self._view = memoryview(self._buf)
        self._start = self._end = 0

    def _need(self, n: int) -> None:
        """Make `n` bytes available from `_start` (EOFError when the peer is gone)."""
        if self._end - self._start >= n:
            return
        if self._start + n > len(self._buf):
            if n > MAX_FRAME:
                raise websocket.WebSocketProtocolException(f"a frame of {n} bytes")
            # Move the unread tail to the front of a buffer (a new one: views handed out
            # earlier may still exist, and a bytearray with exports cannot be resized).
            tail = bytes(self._view[self._start:self._end])
            if n > len(self._buf):
                self._buf = bytearray(max(n, 2 * len(self._buf)))
                self._view = memoryview(self._buf)
            self._buf[:len(tail)] = tail
            self._start, self._end = 0, len(tail)
        while self._end - self._start < n:
            got = self.sock.recv_into(self._view[self._end:])
            if not got:
                raise EOFError
            self._end += got

    def next_frame(self) -> tuple[bool, int, memoryview]:
        """(fin, opcode, payload view) of the next frame."""
        self._need(2)
        b0, b1 = self._buf[self._start], self._buf[self._start + 1]
        n, head = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, head = struct.unpack_from("!H", self._buf, self._start + 2)[0], 4
        elif n == 127:
            self._need(10)
            n, head = struct.unpack_from("!Q", self._buf, self._start + 2)[0], 10
        if b1 & 0x80:
            raise websocket.WebSocketProtocolException("the server sent a masked frame")
        self._need(head + n)
        begin = self._start + head
        self._start = begin + n
        return bool(b0 & 0x80), b0 & 0x0F, self._view[begin:begin + n]


class ExecStream:
    """One exec or attach connection. `run()` pumps output until the command ends."""

    def __init__(self, ws: websocket.WebSocket, what: str):
        self.ws = ws
        self.what = what  # "exec in pod x.ns container c", for messages
        self.protocol = ws.subprotocol or V4
        self.status: ExitStatus | None = None

    def run(self, on_stdout: OnData, on_stderr: OnData) -> ExitStatus | None:
        """Deliver output until the status arrives or the connection ends (then None).

        The callbacks get memoryviews into the read buffer, valid during the call only.
        """
        reader = FrameReader(self.ws.sock)
        channel = None  # of the message being received (only its first fragment says)
        status = bytearray()
        while True:
            try:
                fin, opcode, payload = reader.next_frame()
            except (EOFError, OSError, ssl.SSLError, websocket.WebSocketException):
                return self.status
            if opcode == OP_CLOSE:
                return self.status
            if opcode == OP_PING:
                with contextlib.suppress(Exception):
                    self.ws.pong(bytes(payload))
                continue
            if opcode not in (OP_BINARY, OP_TEXT, OP_CONTINUATION):
                continue
            if opcode != OP_CONTINUATION:
                if not payload:
                    continue
                channel, payload = payload[0], payload[1:]
            if channel == STDOUT and payload:
                on_stdout(payload)
            elif channel == STDERR and payload:
                on_stderr(payload)
            elif channel == STATUS:
                status += payload
                if fin:
                    self.status = ExitStatus.from_status(bytes(status))

    def send_stdin(self, data: bytes) -> None:
        self.ws.send(bytes([STDIN]) + data, websocket.ABNF.OPCODE_BINARY)

    def close_stdin(self) -> None:
        """Stdin EOF (v5 only; with v4 the only way is closing the connection)."""
        if self.protocol == V5:
            with contextlib.suppress(Exception):
                self.ws.send(bytes([CLOSE, STDIN]), websocket.ABNF.OPCODE_BINARY)

    def abort(self) -> None:
        """Wake a thread blocked in run() and end the connection (idempotent, any thread)."""
        sock = getattr(self.ws, "sock", None)
        if sock is not None:
            with contextlib.suppress(Exception):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # not SSLSocket's

    def close(self) -> None:
        self.abort()
        with contextlib.suppress(Exception):
            self.ws.close(timeout=0.5)


class WebSocketRefused(Exception):
    """The API server (or a proxy) answered the upgrade with something other than 101, and
    not 401, 404 or a runtime's exec failure: kubectl's SPDY path may still be allowed."""

    def __init__(self, why: str, error: MeshError | None = None):
        super().__init__(why)
        self.error = error  # the ForbiddenError of a 403, else None


class Notices(Protocol):
    def once(self, key: str, message: str) -> None: ...


def open_exec(config: ApiConfig, namespace: str, pod: str, command: Sequence[str], *,
              container: str | None = None, stdin: bool = False, timeout: float | None = 10.0,
              notices: Notices | None = None, kubectl: str | None = None):
    """Start `command` (an argv list, never a shell line) in a container of `pod`: an
    `ExecStream`, or a `KubectlStream` where the WebSocket is refused."""
    query: list[tuple[str, str]] = [("command", c) for c in command]
    what = f"exec in pod {pod}.{namespace}" + (f" container {container}" if container else "")
    try:
        return with_renewal(config, lambda: _open(config, namespace, pod, "exec", list(query),
                                                  container, stdin, timeout, what))
    except WebSocketRefused as refused:
        return _fallback(config, namespace, pod, "exec", command, container, timeout, what,
                         refused, notices, kubectl)


def open_attach(config: ApiConfig, namespace: str, pod: str, *, container: str,
                stdin: bool = True, timeout: float | None = 10.0,
                notices: Notices | None = None, kubectl: str | None = None):
    """Attach to a running container's main process (stdin only, unless asked otherwise)."""
    what = f"attach to pod {pod}.{namespace} container {container}"
    try:
        return with_renewal(config, lambda: _open(config, namespace, pod, "attach", [],
                                                  container, stdin, timeout, what,
                                                  stdout=False))
    except WebSocketRefused as refused:
        return _fallback(config, namespace, pod, "attach", (), container, timeout, what,
                         refused, notices, kubectl)


def _fallback(config: ApiConfig, namespace: str, pod: str, sub: str, command, container,
              timeout, what: str, refused: WebSocketRefused, notices: Notices | None,
              kubectl: str | None):
    """`kubectl exec`/`attach` (SPDY), said once; a 403 there too names both paths."""
    from kubectl_mesh.kube.kubectlexec import KubectlStream

    also = (f"the WebSocket path was refused too: ask for get and create on pods/{sub} in "
            f"namespace {namespace}") if refused.error is not None else ""
    stream = KubectlStream.start(config, namespace, pod, sub, command, container, timeout,
                                 what, kubectl=kubectl, why=str(refused), also=also)
    if sub == "attach":
        stream.wait_attached(timeout or None)
    if notices is not None:
        if refused.error is not None:
            notices.once("websocket-remotecommand",
                         f"note: RBAC refused the WebSocket pods/{sub} ({refused.error.message});"
                         " using kubectl exec/attach (SPDY), which needs only create")
        else:
            notices.once("websocket-remotecommand",
                         f"note: the API server refused the WebSocket pods/{sub} ({refused}); "
                         "using kubectl exec/attach (SPDY)")
    return stream


def _open(config: ApiConfig, namespace: str, pod: str, sub: str, query: list, container,
          stdin: bool, timeout, what: str, stdout: bool = True) -> ExecStream:
    if container:
        query.append(("container", container))
    query += [("stdin", str(stdin).lower()), ("stdout", str(stdout).lower()),
              ("stderr", str(stdout).lower()), ("tty", "false")]
    path = pod_path(namespace, pod, sub)
    url = "ws" + config.server[len("http"):] + path + "?" + urlencode(query)
    sslopt: dict = {"context": tls_context(config)} if config.server.startswith("https") else {}
    if config.tls_server_name:
        sslopt["server_hostname"] = config.tls_server_name
    headers = [f"{k}: {v}" for k, v in config.auth_headers()]
    try:
        ws = websocket.create_connection(
            url, timeout=timeout, header=headers, subprotocols=[V5, V4], sslopt=sslopt,
            enable_multithread=True, skip_utf8_validation=True, suppress_origin=True,
            **proxy_options(config))
    except websocket.WebSocketBadStatusException as e:
        body = e.resp_body or b""
        if e.status_code >= 500 and b"exec failed" in body:  # the runtime could not start it
            raise ExecFailed(_message(body)) from e
        error = status_error(e.status_code, body, "POST", path, config)
        if e.status_code in (401, 404):
            raise error from e
        # kubectl falls back to SPDY on any failed upgrade (client-go
        # tools/remotecommand/fallback.go, httpstream.IsUpgradeFailure), a 403 included
        raise WebSocketRefused(f"HTTP {e.status_code}: {error.message}",
                               error if e.status_code == 403 else None) from e
    except websocket.WebSocketTimeoutException as e:
        raise UnreachableError(f"{what}: the API server {config.where} did not answer within "
                               f"{timeout}s", hint="retry, or raise --request-timeout") from e
    except (ssl.SSLError, ssl.CertificateError) as e:
        raise UnreachableError(f"TLS handshake with the API server {config.where} failed: {e}")\
            from e
    except websocket.WebSocketException as e:  # a 101 without a WebSocket, a proxy's answer
        raise WebSocketRefused(f"{what}: the WebSocket upgrade failed: {e}") from e
    except OSError as e:
        raise UnreachableError(f"cannot reach the API server {config.where} for {what}: "
                               f"{e.strerror or e}",
                               hint="is the cluster running? check --context / --kubeconfig") from e
    ws.settimeout(None)  # a quiet capture may send nothing for a long time
    return ExecStream(ws, what)
