"""One gRPC call over HTTP/2 on a socket the caller already has (a port-forward channel, or
a TCP connection to `--xds-address`), with optional TLS on top: send one request message on
a stream and read the first response message back.

HTTP/2 framing and HPACK come from `h2` (pure Python); gRPC's own framing is a 5-byte prefix
(compressed flag, big-endian length) per message, its status in the trailers `grpc-status` /
`grpc-message` (or in the headers of a trailers-only answer) – grpc's doc PROTOCOL-HTTP2.md.
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
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    import h2.settings

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
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                header_encoding="utf-8"))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
                          h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 1024 * 1024})
    conn.increment_flow_control_window(_WINDOW)
    stream_id = conn.get_next_available_stream_id()
    headers = [(":method", "POST"), (":scheme", "https" if tls else "http"),
               (":path", path), (":authority", authority), ("te", "trailers"),
               ("content-type", "application/grpc"), ("user-agent", "kubectl-mesh")]
    if timeout:
        headers.append(("grpc-timeout", f"{max(1, int(timeout * 1000))}m"))
    headers += [(k.lower(), v) for k, v in (metadata or {}).items()]
    conn.send_headers(stream_id, headers)
    conn.send_data(stream_id, grpc_frame(message))
    pending = bytearray()
    try:
        stream.send(conn.data_to_send())
        while True:
            data = stream.recv()
            if not data:
                raise CallError("the server closed the connection before answering")
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError as e:
                raise CallError(f"not an HTTP/2 (gRPC) answer: {type(e).__name__}") from e
            for event in events:
                if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)) \
                        and event.stream_id == stream_id:
                    _check_headers(dict(event.headers),
                                   isinstance(event, h2.events.ResponseReceived))
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                    conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                    pending += event.data
                    while len(pending) >= 5:
                        size = struct.unpack_from(">I", pending, 1)[0]
                        if size > MAX_MESSAGE:
                            raise CallError(f"a response message of {size} bytes")
                        if pending[0] & 1:
                            raise CallError("a compressed response message (none was asked)")
                        if len(pending) < 5 + size:
                            break
                        reply = bytes(pending[5:5 + size])
                        try:
                            conn.reset_stream(stream_id, error_code=8)  # CANCEL
                            conn.close_connection()
                            stream.send(conn.data_to_send())
                        except (OSError, h2.exceptions.H2Error):
                            pass
                        return reply
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                    raise CallError("the server ended the stream without an answer")
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                    raise CallError(f"the server reset the stream (HTTP/2 error "
                                    f"{event.error_code})")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    detail = (event.additional_data or b"").decode(errors="replace")[:200]
                    raise CallError("the server closed the HTTP/2 connection"
                                    + (f": {detail}" if detail else ""))
            stream.send(conn.data_to_send())
    except ssl.SSLError as e:
        raise CallError(f"TLS: {e.reason or e}") from e


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
