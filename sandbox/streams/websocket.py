"""Server side of RFC 6455 framing on a connection that has already answered 101."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.strip().encode() + GUID).digest()).decode()


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR the payload with the 4-byte mask as one big integer (a per-byte loop is ~100x slower)."""
    n = len(payload)
    if not n:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def frame_header(opcode: int, n: int) -> bytes:
    """The header of an unmasked (server → client) final frame of `n` payload bytes."""
    if n < 126:
        return struct.pack("!BB", 0x80 | opcode, n)
    if n < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 126, n)
    return struct.pack("!BBQ", 0x80 | opcode, 127, n)


def frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked (server → client) final frame."""
    return frame_header(opcode, len(payload)) + payload


class WebSocket:
    """Message-level reads (one reader thread) and thread-safe writes.

    `rfile` is the handler's buffered reader (it may already hold bytes that followed the
    upgrade request); `sock` the raw (TLS) socket written with sendall.
    """

    def __init__(self, rfile, sock: socket.socket):
        self._rfile = rfile
        self._sock = sock
        self._wlock = threading.Lock()
        self._close_sent = False
        self.peer_closed = False

    def _read_exact(self, n: int) -> bytes:
        data = self._rfile.read(n) if n else b""
        if len(data) < n:
            raise EOFError
        return data

    def _read_frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        mask = self._read_exact(4) if b1 & 0x80 else None
        payload = self._read_exact(n)
        if mask:
            payload = unmask(payload, mask)
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv(self) -> bytes | None:
        """The next data message (fragments joined); None once the peer closed or vanished.

        Pings are answered here; a close frame is echoed.
        """
        parts: list[bytes] = []
        while True:
            try:
                fin, opcode, payload = self._read_frame()
            except (EOFError, OSError, ValueError):
                return None
            if opcode == OP_PING:
                self._send_quietly(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self.peer_closed = True
                self.close(payload[:2] if len(payload) >= 2 else b"")
                return None
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                parts.append(payload)
                if fin:
                    return parts[0] if len(parts) == 1 else b"".join(parts)

    def send(self, payload: bytes, opcode: int = OP_BINARY) -> None:
        """Send one message; raises OSError when the connection is gone."""
        self.send_frame(frame(opcode, payload))

    def send_frame(self, data) -> None:
        """Send an already framed message (bytes-like); raises OSError when the connection is gone."""
        with self._wlock:
            if self._close_sent:
                raise BrokenPipeError("websocket already closed")
            self._sock.sendall(data)

    def _send_quietly(self, opcode: int, payload: bytes) -> None:
        try:
            self.send(payload, opcode)
        except OSError:
            pass

    def close(self, code: bytes = struct.pack("!H", 1000)) -> None:
        """Send the close frame once (further sends fail)."""
        with self._wlock:
            if self._close_sent:
                return
            self._close_sent = True
            try:
                self._sock.sendall(frame(OP_CLOSE, code))
            except OSError:
                pass


HEAD_ROOM = 11  # the longest frame header (10 bytes) + a channel byte


class ChannelFramer:
    """Reads a pipe straight into a buffer behind room for the frame header and channel byte,
    then sends header + channel + data as ONE slice of that buffer: no copies in Python (the
    `head + bytes([ch]) + data` of `send` copies every byte twice) and one `sendall` per read,
    so a process that writes in bursts (tcpdump -U) is drained in few, large messages."""

    def __init__(self, ws: WebSocket, channel: int, size: int):
        self.ws, self.channel = ws, channel
        self._buf = bytearray(HEAD_ROOM + size)
        self._view = memoryview(self._buf)
        self._buf[HEAD_ROOM - 1] = channel

    def pump_once(self, fd: int) -> bool:
        """One read of `fd` sent as one binary message; False at EOF."""
        n = os.readv(fd, [self._view[HEAD_ROOM:]])
        return self._send(n)

    def pump_socket(self, sock: socket.socket) -> bool:
        """One recv of `sock` (a pod connection of a port-forward) sent as one binary
        message; False at EOF."""
        return self._send(sock.recv_into(self._view[HEAD_ROOM:]))

    def _send(self, n: int) -> bool:
        if not n:
            return False
        head = frame_header(OP_BINARY, n + 1)
        start = HEAD_ROOM - 1 - len(head)
        self._buf[start:HEAD_ROOM - 1] = head
        self.ws.send_frame(self._view[start:HEAD_ROOM + n])
        return True


class ByteStream:
    """The payloads of successive binary messages read as one byte stream (SPDY tunnelled in
    WebSocket), and writes sent as one binary message each."""

    def __init__(self, ws: WebSocket):
        self.ws = ws
        self._buf = bytearray()

    def read_exact(self, n: int) -> bytes | None:
        while len(self._buf) < n:
            msg = self.ws.recv()
            if msg is None:
                return None
            self._buf += msg
        out = bytes(self._buf[:n])
        del self._buf[:n]  # bytearray drops a prefix without copying the rest
        return out

    def send(self, data: bytes) -> None:
        self.ws.send(data)

    def close(self) -> None:
        self.ws.close()
