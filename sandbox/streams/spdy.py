"""A server-side SPDY/3.1 session, as much of it as the Kubernetes stream protocols use.

The client (kubectl's spdystream) opens every stream; we reply, exchange DATA, FIN and echo
PINGs. Flow control frames are ignored: spdystream neither needs nor enforces them.
All header blocks of one direction pass through ONE zlib stream primed with the SPDY/3
dictionary, so compression and sending happen under one lock, in order.
"""

from __future__ import annotations

import queue
import struct
import threading
import zlib
from typing import Callable

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
VERSION = 3
MAX_DATA = 32 * 1024
RST_CANCEL = 5

_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base "
    "content-encoding content-language content-length content-location content-md5 "
    "content-range content-type date etag expect expires from host if-match if-modified-since "
    "if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te trailer "
    "transfer-encoding upgrade user-agent vary via warning www-authenticate method get status "
    "200\x00OK version HTTP/1.1 url public set-cookie keep-alive origin").split()
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
    "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
# The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): length-prefixed words
# then a run of status codes, dates and media types; 1423 bytes.
DICTIONARY = b"".join(struct.pack("!I", len(w)) + w.replace("\x00", " ").encode()
                      for w in _WORDS) + _TAIL.encode()


def encode_headers(headers: dict[str, str]) -> bytes:
    out = [struct.pack("!I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out += [struct.pack("!I", len(n)), n, struct.pack("!I", len(v)), v]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, str]:
    """Name → first value (multiple values are NUL-separated)."""
    (count,), pos, out = struct.unpack_from("!I", block), 4, {}
    for _ in range(count):
        (n,) = struct.unpack_from("!I", block, pos)
        name = block[pos + 4:pos + 4 + n].decode("latin-1").lower()
        pos += 4 + n
        (n,) = struct.unpack_from("!I", block, pos)
        out[name] = block[pos + 4:pos + 4 + n].decode("latin-1").split("\x00")[0]
        pos += 4 + n
    return out


class Stream:
    """One client-opened stream: read() what the client sent, write()/close() our half."""

    def __init__(self, session: "Session", stream_id: int, headers: dict[str, str]):
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._incoming: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._fin_sent = False
        self._eof = False

    def read(self) -> bytes:
        """The next chunk the client sent; b"" once it sent FIN, reset, or the session ended."""
        if self._eof:
            return b""
        data = self._incoming.get()
        if data is None:
            self._eof = True
            return b""
        return data

    def write(self, data: bytes) -> None:
        """Send DATA; raises OSError when the session is gone."""
        self.session.send_data(self.id, data)

    def close(self) -> None:
        """Half-close our side (an empty DATA frame with FIN), once."""
        with self._lock:
            if self._fin_sent:
                return
            self._fin_sent = True
        try:
            self.session.send_data(self.id, b"", fin=True)
        except OSError:
            pass

    def reset(self) -> None:
        """Abort the stream (RST_STREAM CANCEL)."""
        with self._lock:
            self._fin_sent = True
        try:
            self.session.send_control(RST_STREAM, 0, struct.pack("!II", self.id, RST_CANCEL))
        except OSError:
            pass

    def _feed(self, data: bytes | None) -> None:
        self._incoming.put(data)


class Session:
    """Reads frames in `serve()` (one thread); `on_stream(stream)` is called, after our
    SYN_REPLY went out, for every stream the client opens and must not block."""

    def __init__(self, transport, on_stream: Callable[[Stream], None]):
        self._transport = transport
        self._on_stream = on_stream
        self._wlock = threading.Lock()
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 8,
                                         zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._streams: dict[int, Stream] = {}
        self._closed = False
        self.ended = threading.Event()

    # -- writing
    def _send(self, data: bytes) -> None:
        with self._wlock:
            if self._closed:
                raise BrokenPipeError("spdy session closed")
            self._transport.send(data)

    def send_control(self, ftype: int, flags: int, payload: bytes) -> None:
        self._send(struct.pack("!HHI", 0x8000 | VERSION, ftype, flags << 24 | len(payload)) + payload)

    def send_data(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        view = memoryview(data)
        for pos in range(0, max(len(data), 1), MAX_DATA):
            chunk = view[pos:pos + MAX_DATA]
            last = pos + MAX_DATA >= len(data)
            flags = FLAG_FIN if fin and last else 0
            self._send(struct.pack("!II", stream_id, flags << 24 | len(chunk)) + chunk)

    def _reply(self, stream_id: int) -> None:
        with self._wlock:  # compress and send in one step: the zlib stream must stay in order
            block = self._deflate.compress(encode_headers({})) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            payload = struct.pack("!I", stream_id) + block
            self._transport.send(struct.pack("!HHI", 0x8000 | VERSION, SYN_REPLY, len(payload)) + payload)

    def close(self) -> None:
        """GOAWAY and stop writing; the caller hangs up the connection."""
        try:
            self.send_control(GOAWAY, 0, struct.pack("!II", 0, 0))
        except OSError:
            pass
        with self._wlock:
            self._closed = True
        self._transport.close()

    # -- reading
    def serve(self) -> None:
        """Read frames until the client goes away or sends GOAWAY; then end every stream."""
        try:
            while self._frame():
                pass
        except (OSError, zlib.error, struct.error, ValueError):
            pass
        finally:
            for stream in list(self._streams.values()):
                stream._feed(None)
            self._streams.clear()
            self.ended.set()

    def _frame(self) -> bool:
        head = self._transport.read_exact(8)
        if head is None:
            return False
        word, flags_len = struct.unpack("!II", head)
        flags, length = flags_len >> 24, flags_len & 0xFFFFFF
        payload = self._transport.read_exact(length) if length else b""
        if payload is None:
            return False
        if not word & 0x80000000:
            stream = self._streams.get(word & 0x7FFFFFFF)
            if stream is not None:
                if payload:
                    stream._feed(payload)
                if flags & FLAG_FIN:
                    stream._feed(None)
            return True
        ftype = word & 0xFFFF
        if ftype == SYN_STREAM:
            stream_id = struct.unpack_from("!I", payload)[0] & 0x7FFFFFFF
            headers = decode_headers(self._inflate.decompress(payload[10:]))
            stream = Stream(self, stream_id, headers)
            self._streams[stream_id] = stream
            self._reply(stream_id)
            if flags & FLAG_FIN:
                stream._feed(None)
            self._on_stream(stream)
        elif ftype == HEADERS:
            self._inflate.decompress(payload[4:])  # keep the shared zlib stream in step
        elif ftype == RST_STREAM:
            stream = self._streams.pop(struct.unpack_from("!I", payload)[0] & 0x7FFFFFFF, None)
            if stream is not None:
                stream._feed(None)
        elif ftype == PING:
            self.send_control(PING, 0, payload)
        elif ftype == GOAWAY:
            return False
        return True  # SETTINGS, WINDOW_UPDATE, ...: nothing to do
