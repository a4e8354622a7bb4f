"""One gRPC call over HTTP/2 on a socket the caller already has (a port-forward channel, or
a TCP connection to `--xds-address`), with optional TLS on top: send one request message on
a stream and read the first response message back.

HTTP/2 framing and HPACK are `xds.http2`'s (the one stream this needs); gRPC's own framing
is a 5-byte prefix (compressed flag, big-endian length) per message, its status in the
trailers `grpc-status` / `grpc-message` (or in the headers of a trailers-only answer) –
grpc's doc PROTOCOL-HTTP2.md.
TLS runs in memory (`ssl.MemoryBIO`), so it works on a port-forward WebSocket as on a socket.
"""

from __future__ import annotations

import ssl
import struct
import time
from urllib.parse import unquote

MAX_MESSAGE = 256 * 1024 * 1024  # a syncz of many thousand proxies stays far below
_WINDOW = 16 * 1024 * 1024
_READ = 256 * 1024
# grpc status codes (google.golang.org/grpc/codes) by number, for messages
CODES = {1: "Canceled", 2: "Unknown", 3: "InvalidArgument", 4: "DeadlineExceeded",
         5: "NotFound", 7: "PermissionDenied", 8: "ResourceExhausted",
         9: "FailedPrecondition", 12: "Unimplemented", 13: "Internal", 14: "Unavailable",
         16: "Unauthenticated"}


class CallError(Exception):
    """The call failed: transport, TLS, HTTP/2 or a gRPC status; `str()` says which."""


class GrpcStatusError(CallError):
    def __init__(self, code: int, message: str):
        self.code = code
        self.message = message
        super().__init__(f"gRPC {CODES.get(code, code)}: {message}" if message
                         else f"gRPC {CODES.get(code, code)}")


class _Stream:
    """Bytes in and out of the caller's socket (`recv_into` or `readinto`), TLS optional."""

    def __init__(self, sock, tls: ssl.SSLContext | None, server_hostname: str | None,
                 deadline: float | None):
        self.sock = sock
        self.deadline = deadline
        self._read_into = getattr(sock, "recv_into", None) or sock.readinto
        self._buf = bytearray(_READ)
        self.tls = None
        if tls is not None:
            self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = tls.wrap_bio(self._in, self._out, server_hostname=server_hostname)
            self._handshake()

    def _raw_recv(self) -> bytes:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            self.sock.settimeout(left)
        n = self._read_into(memoryview(self._buf))
        return bytes(self._buf[:n])

    def _flush_tls(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)

    def _handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                self._flush_tls()
                return
            except ssl.SSLWantReadError:
                self._flush_tls()
                data = self._raw_recv()
                if not data:
                    raise CallError("the server closed the connection during the TLS handshake "
                                    "(is this port plaintext? then --plaintext)") from None
                self._in.write(data)

    def send(self, data: bytes) -> None:
        if not data:
            return
        if self.tls is None:
            self.sock.sendall(data)
            return
        self.tls.write(data)
        self._flush_tls()

    def recv(self) -> bytes:
        if self.tls is None:
            return self._raw_recv()
        while True:
            try:
                return self.tls.read(_READ)
            except ssl.SSLWantReadError:
                data = self._raw_recv()
                if not data:
                    return b""
                self._in.write(data)
            except ssl.SSLZeroReturnError:
                return b""


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def call_first(sock, path: str, message: bytes, *, authority: str,
               metadata: dict[str, str] | None = None, tls: ssl.SSLContext | None = None,
               server_hostname: str | None = None, timeout: float | None = None) -> bytes:
    """Open a stream to `path`, send `message`, and return the first response message; the
    stream is cancelled afterwards (ADS streams never end on their own). CallError (or
    TimeoutError/OSError from the socket) on failure."""
    from kubectl_mesh.xds import http2

    deadline = time.monotonic() + timeout if timeout else None
    try:
        stream = _Stream(sock, tls, server_hostname, deadline)
    except ssl.SSLCertVerificationError as e:
        raise CallError(f"TLS: {e.verify_message or e.reason}") from e
    except ssl.SSLError as e:
        if e.reason == "WRONG_VERSION_NUMBER":
            raise CallError("TLS handshake answered by something that does not speak TLS "
                            "(a plaintext port? then --plaintext)") from e
        raise CallError(f"TLS: {e.reason or e}") from e
    headers = [(":method", "POST"), (":scheme", "https" if tls else "http"),
               (":path", path), (":authority", authority), ("te", "trailers"),
               ("content-type", "application/grpc"), ("user-agent", "kubectl-mesh")]
    if timeout:
        headers.append(("grpc-timeout", f"{max(1, int(timeout * 1000))}m"))
    headers += [(k.lower(), v) for k, v in (metadata or {}).items()]
    try:
        stream.send(http2.PREFACE + http2.settings({
            http2.ENABLE_PUSH: 0, http2.INITIAL_WINDOW_SIZE: _WINDOW,
            http2.MAX_HEADER_LIST_SIZE: 1024 * 1024})
            + http2.window_update(0, _WINDOW)
            + http2.headers_frames(_STREAM, headers, http2.DEFAULT_FRAME_SIZE)
            + http2.data_frames(_STREAM, grpc_frame(message), http2.DEFAULT_FRAME_SIZE))
        return _read_first(stream, http2)
    except http2.ProtocolError as e:
        raise CallError(f"not an HTTP/2 (gRPC) answer: {e}") from e
    except ssl.SSLError as e:
        raise CallError(f"TLS: {e.reason or e}") from e


_STREAM = 1  # the client's first stream


def _read_first(stream: _Stream, http2) -> bytes:
    """The frames of the server's answer on `_STREAM` until its first whole message."""
    reader = http2.FrameReader(http2.DEFAULT_FRAME_SIZE)
    decoder = http2.HpackDecoder()
    pending = bytearray()
    block = bytearray()  # a header block whose CONTINUATION frames are still to come
    block_ends_stream = False
    unacknowledged = 0
    got_headers = False
    first_frame = True
    while True:
        data = stream.recv()
        if not data:
            raise CallError("the server closed the connection before answering")
        reader.feed(data)
        out = []
        for kind, flags, stream_id, payload in reader.frames():
            if first_frame and kind != http2.SETTINGS:
                raise http2.ProtocolError("the server's first frame is not SETTINGS")
            first_frame = False
            if block and kind != http2.CONTINUATION:
                raise http2.ProtocolError("a header block without its CONTINUATION")
            if kind == http2.SETTINGS:
                if not flags & http2.ACK:
                    out.append(http2.frame(http2.SETTINGS, http2.ACK, 0))
            elif kind == http2.PING:
                if not flags & http2.ACK:
                    out.append(http2.frame(http2.PING, http2.ACK, 0, payload))
            elif kind == http2.GOAWAY:
                detail = payload[8:].decode(errors="replace")[:200]
                raise CallError("the server closed the HTTP/2 connection"
                                + (f": {detail}" if detail else ""))
            elif stream_id != _STREAM:
                continue  # WINDOW_UPDATE and PRIORITY on the connection, nothing else opened
            elif kind in (http2.HEADERS, http2.CONTINUATION):
                block += http2.unpad(flags, payload, priority=True) \
                    if kind == http2.HEADERS else payload
                if kind == http2.HEADERS:
                    block_ends_stream = bool(flags & http2.END_STREAM)
                if flags & http2.END_HEADERS:
                    fields = decoder.decode(bytes(block))
                    block.clear()
                    _check_headers(dict(fields), not got_headers)
                    got_headers = True
                    if block_ends_stream:
                        raise CallError("the server ended the stream without an answer")
            elif kind == http2.DATA:
                unacknowledged += len(payload)
                pending += http2.unpad(flags, payload)
                reply = _message(pending)
                if reply is not None:
                    _cancel(stream, http2, out)
                    return reply
                if flags & http2.END_STREAM:
                    raise CallError("the server ended the stream without an answer")
            elif kind == http2.RST_STREAM:
                code = int.from_bytes(payload[:4], "big")
                raise CallError(f"the server reset the stream (HTTP/2 error {code})")
        if unacknowledged >= _WINDOW // 4:  # top both windows up before they run dry
            out.append(http2.window_update(0, unacknowledged)
                       + http2.window_update(_STREAM, unacknowledged))
            unacknowledged = 0
        if out:
            stream.send(b"".join(out))


def _message(pending: bytearray) -> bytes | None:
    """The first gRPC message once `pending` holds it whole."""
    if len(pending) < 5:
        return None
    size = struct.unpack_from(">I", pending, 1)[0]
    if size > MAX_MESSAGE:
        raise CallError(f"a response message of {size} bytes")
    if pending[0] & 1:
        raise CallError("a compressed response message (none was asked)")
    if len(pending) < 5 + size:
        return None
    return bytes(pending[5:5 + size])


def _cancel(stream: _Stream, http2, out: list[bytes]) -> None:
    """RST_STREAM CANCEL and GOAWAY, best effort: the answer is in hand."""
    try:
        stream.send(b"".join(out) + http2.frame(http2.RST_STREAM, 0, _STREAM,
                                                 http2.CANCEL.to_bytes(4, "big"))
                    + http2.frame(http2.GOAWAY, 0, 0, (0).to_bytes(8, "big")))
    except (OSError, ssl.SSLError):
        pass


def _check_headers(headers: dict[str, str], first: bool) -> None:
    status = headers.get(":status")
    if first and status is not None and status != "200":
        raise CallError(f"HTTP {status} instead of a gRPC answer"
                        + (f" ({headers.get('content-type')})"
                           if headers.get("content-type") else ""))
    code = headers.get("grpc-status")
    if code is not None and code != "0":
        raise GrpcStatusError(int(code) if code.isdigit() else 2,
                              unquote(headers.get("grpc-message", "")))
