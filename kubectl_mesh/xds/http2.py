"""The part of HTTP/2 (RFC 9113) and HPACK (RFC 7541) one client stream needs: frames in and
out, header blocks encoded as plain literals, the server's header blocks decoded (static and
dynamic table, Huffman strings).

A gRPC call to istiod opens one stream, sends one message and reads one back; this is that
much of the protocol in a few hundred lines, without the import (~25 ms) and the per-frame
event objects of a general HTTP/2 library. Flow control: the client announces large windows
and tops them up as data is read (`Connection.consumed`).
"""

from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
# flags
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# settings
HEADER_TABLE_SIZE, ENABLE_PUSH, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = \
    0x1, 0x2, 0x4, 0x5, 0x6
DEFAULT_FRAME_SIZE = 16384  # SETTINGS_MAX_FRAME_SIZE until the peer says otherwise
CANCEL = 0x8
_HEADER = struct.Struct(">I B I")  # (length << 8 | type), flags, stream id: 9 bytes, see frame()


class ProtocolError(Exception):
    """The peer broke HTTP/2 (or is not speaking it); the message says how."""


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + \
        struct.pack(">I", stream_id & 0x7FFFFFFF) + payload


def settings(values: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in values.items()))


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def headers_frames(stream_id: int, headers: list[tuple[str, str]], max_frame: int,
                   end_stream: bool = False) -> bytes:
    """HEADERS (and CONTINUATION when the block is longer than a frame) for `headers`."""
    block = encode_headers(headers)
    chunks = [block[i:i + max_frame] for i in range(0, len(block), max_frame)] or [b""]
    out = []
    for i, chunk in enumerate(chunks):
        flags = END_HEADERS if i == len(chunks) - 1 else 0
        if i == 0:
            out.append(frame(HEADERS, flags | (END_STREAM if end_stream else 0), stream_id,
                             chunk))
        else:
            out.append(frame(CONTINUATION, flags, stream_id, chunk))
    return b"".join(out)


def data_frames(stream_id: int, data: bytes, max_frame: int) -> bytes:
    return b"".join(frame(DATA, 0, stream_id, data[i:i + max_frame])
                    for i in range(0, len(data), max_frame))


# ---- HPACK -------------------------------------------------------------------------------


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 5.1: `value` with an N-bit prefix, `first` holding the pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_headers(headers: list[tuple[str, str]]) -> bytes:
    """Every field as a literal without indexing and with a new name (6.2.2), strings raw:
    no state is shared with the decoder on the other side."""
    out = bytearray()
    for name, value in headers:
        n, v = name.encode(), value.encode()
        out += b"\x00" + _integer(len(n), 7, 0) + n + _integer(len(v), 7, 0) + v
    return bytes(out)


class HpackDecoder:
    """A connection's decoder: the dynamic table lives across header blocks (RFC 7541 2.3)."""

    def __init__(self, max_size: int = 4096):
        self.max_size = max_size  # our SETTINGS_HEADER_TABLE_SIZE (the default)
        self.size = max_size
        self.table: list[tuple[str, str]] = []  # newest first
        self.used = 0

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        out = []
        pos = 0
        while pos < len(block):
            b = block[pos]
            if b & 0x80:  # indexed field (6.1)
                index, pos = _read_int(block, pos, 7)
                out.append(self._entry(index))
            elif b & 0x40:  # literal with incremental indexing (6.2.1)
                name, value, pos = self._literal(block, pos, 6)
                out.append((name, value))
                self._add(name, value)
            elif b & 0x20:  # dynamic table size update (6.3)
                size, pos = _read_int(block, pos, 5)
                if size > self.max_size:
                    raise ProtocolError(f"HPACK table size {size} above {self.max_size}")
                self.size = size
                self._evict()
            else:  # literal without indexing / never indexed (6.2.2, 6.2.3)
                name, value, pos = self._literal(block, pos, 4)
                out.append((name, value))
        return out

    def _literal(self, block: bytes, pos: int, prefix: int) -> tuple[str, str, int]:
        index, pos = _read_int(block, pos, prefix)
        if index:
            name = self._entry(index)[0]
        else:
            name, pos = _read_string(block, pos)
        value, pos = _read_string(block, pos)
        return name, value, pos

    def _entry(self, index: int) -> tuple[str, str]:
        from kubectl_mesh.xds.hpacktables import STATIC_TABLE
        if 0 < index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        dynamic = index - len(STATIC_TABLE) - 1
        if 0 <= dynamic < len(self.table):
            return self.table[dynamic]
        raise ProtocolError(f"HPACK index {index} out of range")

    def _add(self, name: str, value: str) -> None:
        self.table.insert(0, (name, value))
        self.used += len(name.encode()) + len(value.encode()) + 32
        self._evict()

    def _evict(self) -> None:
        while self.used > self.size and self.table:
            name, value = self.table.pop()
            self.used -= len(name.encode()) + len(value.encode()) + 32


def _read_int(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    if pos >= len(block):
        raise ProtocolError("HPACK block ends inside a field")
    limit = (1 << prefix_bits) - 1
    value = block[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        if pos >= len(block) or shift > 28:
            raise ProtocolError("HPACK integer runs past the block")
        b = block[pos]
        pos += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _read_string(block: bytes, pos: int) -> tuple[str, int]:
    if pos >= len(block):
        raise ProtocolError("HPACK block ends inside a field")
    huffman = block[pos] & 0x80
    length, pos = _read_int(block, pos, 7)
    raw = block[pos:pos + length]
    if len(raw) != length:
        raise ProtocolError("HPACK string runs past the block")
    text = huffman_decode(raw) if huffman else raw
    return text.decode("utf-8", errors="replace"), pos + length


_CODES: dict[tuple[int, int], int] = {}


def huffman_decode(data: bytes) -> bytes:
    """RFC 7541 5.2: the string's symbols; what is left at the end must be a prefix of EOS
    (all ones) shorter than 8 bits."""
    if not _CODES:
        from kubectl_mesh.xds.hpacktables import HUFFMAN
        _CODES.update({(bits, code): symbol for symbol, (code, bits) in enumerate(HUFFMAN)})
    out = bytearray()
    code = bits = 0
    for byte in data:
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            bits += 1
            symbol = _CODES.get((bits, code)) if bits >= 5 else None
            if symbol is not None:
                if symbol == 256:
                    raise ProtocolError("HPACK Huffman string holds EOS")
                out.append(symbol)
                code = bits = 0
            elif bits > 30:
                raise ProtocolError("HPACK Huffman code not in the table")
    if bits > 7 or code != (1 << bits) - 1:
        raise ProtocolError("HPACK Huffman string badly padded")
    return bytes(out)


# ---- frames in ---------------------------------------------------------------------------


class FrameReader:
    """Splits the bytes read into frames: `feed(data)` then iterate `frames()` for
    (type, flags, stream id, payload) of each whole frame."""

    def __init__(self, max_frame: int):
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    def frames(self):
        buf = self._buf
        while len(buf) - self._pos >= 9:
            word, flags, stream_id = _HEADER.unpack_from(buf, self._pos)
            length, kind = word >> 8, word & 0xFF
            if length > self.max_frame:
                raise ProtocolError(f"a frame of {length} bytes (at most {self.max_frame} "
                                    "were allowed)")
            end = self._pos + 9 + length
            if len(buf) < end:
                return
            payload = bytes(buf[self._pos + 9:end])
            self._pos = end
            yield kind, flags, stream_id & 0x7FFFFFFF, payload


def unpad(flags: int, payload: bytes, priority: bool = False) -> bytes:
    """A DATA or HEADERS payload without its padding (and HEADERS' priority fields)."""
    start, end = 0, len(payload)
    if flags & PADDED:
        if not payload:
            raise ProtocolError("a padded frame without its pad length")
        start, end = 1, len(payload) - payload[0]
    if priority and flags & PRIORITY_FLAG:
        start += 5
    if end < start:
        raise ProtocolError("more padding than payload")
    return payload[start:end]
