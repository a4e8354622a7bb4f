"""Classic pcap (what `tcpdump -w -` writes), read incrementally from a byte stream.

Only whole records leave the reader, so whatever is written from them is a valid file even
when the stream is cut mid-packet.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
GLOBAL_HEADER_LEN = 24
RECORD_HEADER_LEN = 16
MAX_RECORD = 256 * 1024 + 64 * 1024  # tcpdump's max snaplen plus slack: a sanity bound


class PcapFormatError(ValueError):
    """The stream is not classic pcap (or is corrupt)."""


@dataclass(frozen=True)
class PcapHeader:
    """The global header: byte order, timestamp resolution, snaplen, link type."""

    endian: str  # "<" or ">"
    nanosecond: bool
    snaplen: int
    linktype: int
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> "PcapHeader":
        for endian in ("<", ">"):
            magic = struct.unpack(endian + "I", raw[:4])[0]
            if magic in (MAGIC_US, MAGIC_NS):
                _, _, _, _, snaplen, linktype = struct.unpack(endian + "HHiIII", raw[4:24])
                return cls(endian, magic == MAGIC_NS, snaplen, linktype & 0x0FFFFFFF, bytes(raw))
        raise PcapFormatError(f"not a pcap stream (magic {raw[:4].hex()})")

    @property
    def ticks_per_second(self) -> int:
        return 1_000_000_000 if self.nanosecond else 1_000_000


@dataclass(frozen=True)
class Record:
    """One packet: timestamp (seconds + fraction in the header's resolution) and bytes."""

    seconds: int
    fraction: int
    orig_len: int
    data: bytes
    raw: bytes  # record header + data, in the stream's byte order

    def timestamp(self, header: PcapHeader) -> float:
        return self.seconds + self.fraction / header.ticks_per_second


class PcapStreamReader:
    """Feed it bytes as they arrive; it returns the whole records completed so far."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.header: PcapHeader | None = None

    def feed(self, data: bytes) -> list[Record]:
        self._buf += data
        if self.header is None:
            if len(self._buf) < GLOBAL_HEADER_LEN:
                return []
            self.header = PcapHeader.parse(bytes(self._buf[:GLOBAL_HEADER_LEN]))
            del self._buf[:GLOBAL_HEADER_LEN]
        fmt = self.header.endian + "IIII"
        records, pos, buf = [], 0, self._buf
        while len(buf) - pos >= RECORD_HEADER_LEN:
            sec, frac, incl, orig = struct.unpack_from(fmt, buf, pos)
            if incl > MAX_RECORD:
                raise PcapFormatError(f"corrupt pcap record (length {incl})")
            end = pos + RECORD_HEADER_LEN + incl
            if len(buf) < end:
                break
            raw = bytes(buf[pos:end])
            records.append(Record(sec, frac, orig, raw[RECORD_HEADER_LEN:], raw))
            pos = end
        if pos:
            del buf[:pos]
        return records

    @property
    def pending(self) -> int:
        """Bytes of an incomplete record held back (dropped if the stream ends now)."""
        return len(self._buf)


def read_file(path: str) -> tuple[PcapHeader, list[Record]]:
    """A whole classic pcap file (tests, summaries)."""
    reader = PcapStreamReader()
    with open(path, "rb") as f:
        records = reader.feed(f.read())
    if reader.header is None:
        raise PcapFormatError(f"{path} is not a pcap file")
    return reader.header, records
