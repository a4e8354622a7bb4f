"""WebSocket frames (RFC 6455, the client's end) and the Kubernetes channel protocol carried
in them, for port-forward and exec/attach alike.

Channel protocol: every binary message starts with a channel byte; a fragmented message
carries it in its first frame only (gorilla, the API server's library, fragments large
messages into continuation frames).
- exec/attach (`v5.channel.k8s.io`, `v4.channel.k8s.io`): 0 stdin, 1 stdout, 2 stderr,
  3 status (the exit `Status` JSON), 4 resize; v5 adds the message `[255, ch]`, which closes
  channel ch (stdin EOF): client-go tools/remotecommand/websocket.go `stream.Close`,
  apimachinery pkg/util/remotecommand/constants.go `StreamClose`.
- port-forward (`v4.channel.k8s.io`, `?ports=P`): channel 2i carries the data and 2i+1 the
  errors of the i-th port; the first bytes on each channel are the port (uint16
  little-endian), not data. An error message ends the stream (the relay and the socket alike).

Frames are read off the socket into one large buffer (`FrameReader`) and payloads handed out as
views of it, or read straight into the caller's buffer (`ChannelReader.readinto`): no copy per
frame in Python. Written here rather than with `websocket-client`, whose import alone costs
~30 ms of a one-shot command's start-up and whose `recv_data` copies every byte three times.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from typing import Callable

V5_CHANNEL, V4_CHANNEL = "v5.channel.k8s.io", "v4.channel.k8s.io"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
STREAM_CLOSE = 255  # v5: the message [255, ch] closes channel ch
READ_BUFFER = 1 << 20
MAX_FRAME = 64 << 20  # a sanity bound: no exec or port-forward frame is anywhere near this


class ConnectionEnded(EOFError, ConnectionResetError):
    """The server closed the connection without a close frame (an EOFError, and for
    `http1` reading a port-forward a ConnectionResetError)."""


class ProtocolError(ConnectionError):
    """The server broke RFC 6455 (a masked frame, an absurd length)."""


def client_frame(payload: bytes, opcode: int = OP_BINARY) -> bytes:
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


class WebSocket:
    """The client's end of an upgraded connection: the socket, the subprotocol the server
    chose, the bytes read past its 101 answer, and the (thread-safe) sends."""

    def __init__(self, sock, subprotocol: str, pending: bytes = b""):
        self.sock, self.subprotocol, self.pending = sock, subprotocol, pending
        self._send_lock = threading.Lock()  # a reader's pong may meet a writer's data

    def send(self, payload: bytes, opcode: int = OP_BINARY) -> None:
        data = client_frame(payload, opcode)
        with self._send_lock:
            self.sock.sendall(data)

    def send_channel(self, channel: int, data) -> None:
        """One binary message on `channel`."""
        self.send(bytes((channel,)) + bytes(data))

    def close_channel(self, channel: int) -> None:
        """Close `channel` (v5 only: with v4 the only way is closing the connection)."""
        if self.subprotocol == V5_CHANNEL:
            self.send(bytes((STREAM_CLOSE, channel)))

    def pong(self, payload: bytes) -> None:
        self.send(payload, OP_PONG)

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def abort(self) -> None:
        """Wake a thread blocked reading and end both directions (idempotent, any thread).
        socket.socket's shutdown, not SSLSocket's, which would need the TLS layer."""
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def send_close(self) -> None:
        """A close frame (1000, normal); quiet if the connection is gone already."""
        with contextlib.suppress(OSError):
            self.send(struct.pack("!H", 1000), OP_CLOSE)

    def close(self) -> None:
        """A close frame, then the socket."""
        self.send_close()
        with contextlib.suppress(OSError):
            self.sock.close()


class FrameReader:
    """RFC 6455 frames from a (TLS) socket: `recv_into` one buffer, payloads as memoryviews.

    A view is valid until the next read. A frame larger than the buffer gets a bigger one
    (up to MAX_FRAME); the unread tail moves to the front when the buffer runs out.
    """

    def __init__(self, sock, size: int = READ_BUFFER, pending: bytes = b""):
        self.sock = sock
        self._buf = bytearray(max(size, len(pending)))
        self._view = memoryview(self._buf)
        self._buf[:len(pending)] = pending
        self._start, self._end = 0, len(pending)

    def _need(self, n: int) -> None:
        """Make `n` bytes available from `_start` (ConnectionEnded when the peer is gone)."""
        if self._end - self._start >= n:
            return
        if self._start == self._end:  # all read: fill from the front (no small reads at the end)
            self._start = self._end = 0
        if self._start + n > len(self._buf):
            if n > MAX_FRAME:
                raise ProtocolError(f"the server sent a frame of {n} bytes")
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
                raise ConnectionEnded("the API server closed the WebSocket connection")
            self._end += got

    def next_header(self) -> tuple[bool, int, int]:
        """(fin, opcode, payload length) of the next frame; its payload is read next."""
        if self._end - self._start < 2:
            self._need(2)
        b0, b1 = self._buf[self._start], self._buf[self._start + 1]
        n, head = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, head = struct.unpack_from("!H", self._buf, self._start + 2)[0], 4
        elif n == 127:
            self._need(10)
            n, head = struct.unpack_from("!Q", self._buf, self._start + 2)[0], 10
        if b1 & 0x80:  # RFC 6455 5.1: a server never masks
            raise ProtocolError("the server sent a masked frame")
        self._start += head
        return bool(b0 & 0x80), b0 & 0x0F, n

    def payload(self, n: int) -> memoryview:
        """The next `n` payload bytes, as a view of the buffer."""
        if self._end - self._start < n:
            self._need(n)
        begin = self._start
        self._start += n
        return self._view[begin:begin + n]

    def payload_byte(self) -> int:
        """The next payload byte (a channel byte)."""
        if self._end == self._start:
            self._need(1)
        self._start += 1
        return self._buf[self._start - 1]

    def payload_into(self, view: memoryview) -> int:
        """Up to len(view) payload bytes into `view`: buffered ones first, else straight from
        the socket (no copy through the buffer)."""
        buffered = self._end - self._start
        if buffered:
            n = min(len(view), buffered)
            view[:n] = self._view[self._start:self._start + n]
            self._start += n
            return n
        n = self.sock.recv_into(view)
        if not n:
            raise ConnectionEnded("the API server closed the WebSocket connection")
        return n

    def next_frame(self) -> tuple[bool, int, memoryview]:
        """(fin, opcode, payload view) of the next frame."""
        fin, opcode, n = self.next_header()
        return fin, opcode, self.payload(n)


class ChannelReader:
    """The channel messages of one connection, as pieces: `read()` gives (channel, bytes) or
    None once the server sent a close frame. Pings are answered, text and pongs skipped; with
    `port_prefix` the port that opens each port-forward channel is dropped."""

    def __init__(self, ws, *, port_prefix: bool = False, buffer_size: int = READ_BUFFER):
        self.frames = FrameReader(ws.sock, buffer_size, ws.pending)
        self._pong: Callable[[bytes], None] = ws.pong
        self._prefix: dict[int, int] | None = {} if port_prefix else None
        self.channel = -1  # of the message being read (only its first frame says)
        self._left = 0  # payload bytes of the current frame not read yet
        self._fin = True  # whether the current frame ends its message
        self.closed = False

    @property
    def message_done(self) -> bool:
        """Whether the last piece read ended its message."""
        return self._fin and self._left == 0

    def _advance(self) -> bool:
        """Stand on unread payload bytes of a channel message; False once closed."""
        frames = self.frames
        while self._left == 0:
            if self.closed:
                return False
            fin, opcode, length = frames.next_header()
            if opcode == OP_BINARY or opcode == OP_TEXT:  # a message's first frame
                if length == 0:
                    continue
                self._fin = fin
                self.channel = frames.payload_byte()
                self._left = length - 1
            elif opcode == OP_CONTINUATION:
                self._fin = fin
                if fin and length == 0:
                    return True  # an empty last fragment: the message ends with an empty piece
                self._left = length
            elif opcode == OP_CLOSE:
                frames.payload(length)
                self.closed = True
                return False
            elif opcode == OP_PING:
                with contextlib.suppress(OSError):
                    self._pong(bytes(frames.payload(length)))
                continue
            else:
                frames.payload(length)  # a pong: not part of any stream
                continue
            if self._prefix is not None:  # the port opens the channel: not data
                skip = min(self._prefix.setdefault(self.channel, 2), self._left)
                if skip:
                    frames.payload(skip)
                    self._prefix[self.channel] -= skip
                    self._left -= skip
        return True

    def read(self, limit: int | None = None) -> tuple[int, memoryview] | None:
        """The next piece of a message: (channel, up to `limit` bytes of the frame, as a view
        valid until the next read), or None once the server closed the connection."""
        if self._left == 0 and not self._advance():
            return None
        n = self._left if limit is None else min(limit, self._left)
        self._left -= n
        return self.channel, self.frames.payload(n)

    def next_channel(self) -> int:
        """The channel of the next unread payload bytes (read them with `readinto` or
        `rest_of_message`); -1 once the server closed the connection."""
        return self.channel if self._left or self._advance() else -1

    def readinto(self, view: memoryview) -> int:
        """Up to len(view) bytes of the message `next_channel()` stands on, into `view`."""
        n = self.frames.payload_into(view[:min(len(view), self._left)]) if self._left else 0
        self._left -= n
        return n

    def rest_of_message(self) -> bytes:
        """What is left of the current message, over its continuation frames."""
        out = bytearray()
        while True:
            if self._left:
                out += self.frames.payload(self._left)
                self._left = 0
            if self._fin or not self._advance():
                return bytes(out)
