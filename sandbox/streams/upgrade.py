"""Choosing and answering the HTTP upgrade (WebSocket or SPDY/3.1) for a stream request."""

from __future__ import annotations

import dataclasses
import json
import socket

from . import status, websocket

WEBSOCKET = "websocket"
SPDY = "spdy"
PROTOCOL_HEADER = "X-Stream-Protocol-Version"


@dataclasses.dataclass(frozen=True)
class Upgrade:
    """The transport a client asked for and the subprotocol we agreed on."""

    transport: str  # WEBSOCKET or SPDY
    protocol: str


def parse_bool(query: dict[str, list[str]], name: str, default: bool = False) -> bool:
    """Go's strconv.ParseBool, as the kubelet parses stream flags; junk counts as false."""
    values = query.get(name)
    if not values:
        return default
    return values[-1] in ("1", "t", "T", "TRUE", "true", "True")


def _header_list(handler, name: str) -> list[str]:
    out: list[str] = []
    for value in handler.headers.get_all(name) or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def is_websocket(handler) -> bool:
    return (handler.headers.get("Upgrade") or "").lower() == "websocket"


def negotiate(handler, ws_protocols: list[str], spdy_protocols: list[str], *,
              allow_websocket: bool) -> Upgrade:
    """Pick the transport and the first client-offered protocol we speak; StreamError if none."""
    if is_websocket(handler):
        if not allow_websocket:
            raise _refusal(400, "BadRequest", "websocket upgrade is not supported here; "
                               "use SPDY/3.1")
        offered = _header_list(handler, "Sec-WebSocket-Protocol")
        for proto in offered:
            if proto in ws_protocols:
                return Upgrade(WEBSOCKET, proto)
        raise _refusal(400, "BadRequest", f"unable to negotiate a websocket subprotocol: "
                           f"client offered {offered}, server accepts {ws_protocols}")
    if (handler.headers.get("Upgrade") or "").lower().startswith("spdy/3.1"):
        offered = _header_list(handler, PROTOCOL_HEADER)
        for proto in offered:
            if proto in spdy_protocols:
                return Upgrade(SPDY, proto)
        raise _refusal(403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: "
                           f"client supports {offered}, server accepts {spdy_protocols}")
    raise _refusal(400, "BadRequest", "Upgrade request required")


def _refusal(code: int, reason: str, message: str) -> status.StreamError:
    return status.StreamError(status.failure(code, reason, message))


def reject(handler, err: status.StreamError) -> None:
    """Answer with a non-101 Status (clients then fall back or report it) and end the connection."""
    body = json.dumps(err.status).encode()
    handler.close_connection = True
    try:
        handler.send_response(err.code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)
    except OSError:
        pass


def accept(handler, up: Upgrade) -> None:
    """Send the 101; afterwards the connection belongs to the stream protocol."""
    handler.close_connection = True
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Connection", "Upgrade")
    if up.transport == WEBSOCKET:
        handler.send_header("Upgrade", "websocket")
        handler.send_header("Sec-WebSocket-Accept",
                            websocket.accept_key(handler.headers.get("Sec-WebSocket-Key", "")))
        handler.send_header("Sec-WebSocket-Protocol", up.protocol)
    else:
        handler.send_header("Upgrade", "SPDY/3.1")
        handler.send_header(PROTOCOL_HEADER, up.protocol)
    handler.end_headers()
    handler.wfile.flush()


def hang_up(handler) -> None:
    """Shut the connection down under any thread still blocked reading or writing it."""
    try:  # the plain socket method: SSLSocket.shutdown would drop its SSL object mid-read
        socket.socket.shutdown(handler.connection, socket.SHUT_RDWR)
    except OSError:
        pass


class RawTransport:
    """The upgraded connection itself as a byte stream (direct SPDY)."""

    def __init__(self, handler):
        self._rfile = handler.rfile
        self._sock = handler.connection

    def read_exact(self, n: int) -> bytes | None:
        try:
            data = self._rfile.read(n)
        except (OSError, ValueError):
            return None
        return data if len(data) == n else None

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close(self) -> None:
        pass
