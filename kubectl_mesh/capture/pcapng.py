"""A pcapng writer: one Interface Description Block per pod, Enhanced Packet Blocks in order.

Blocks are little-endian. Each pod's interface is named `POD/NAMESPACE` (`if_name`) and keeps
its own timestamp resolution (`if_tsresol` 6 or 9) and link type, so packets are copied
without conversion.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from kubectl_mesh.capture.pcap import PcapHeader, Record

SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END, OPT_COMMENT, IF_NAME, IF_DESCRIPTION, IF_TSRESOL = 0, 1, 2, 3, 9
SHB_HARDWARE, SHB_USERAPPL = 3, 4


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _options(opts: list[tuple[int, bytes]]) -> bytes:
    if not opts:
        return b""
    body = b"".join(struct.pack("<HH", code, len(value)) + _pad(value) for code, value in opts)
    return body + struct.pack("<HH", OPT_END, 0)


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def section_header(application: str = "kubectl-mesh sniff") -> bytes:
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
    return _block(SHB, body + _options([(SHB_USERAPPL, application.encode())]))


def interface_description(header: PcapHeader, name: str, description: str = "") -> bytes:
    opts = [(IF_NAME, name.encode())]
    if description:
        opts.append((IF_DESCRIPTION, description.encode()))
    opts.append((IF_TSRESOL, bytes([9 if header.nanosecond else 6])))
    body = struct.pack("<HHI", header.linktype, 0, header.snaplen)
    return _block(IDB, body + _options(opts))


def enhanced_packet(interface_id: int, header: PcapHeader, record: Record) -> bytes:
    ticks = record.seconds * header.ticks_per_second + record.fraction
    body = struct.pack("<IIIII", interface_id, ticks >> 32, ticks & 0xFFFFFFFF,
                       len(record.data), record.orig_len)
    return _block(EPB, body + _pad(record.data))


class PcapngWriter:
    """Writes the section header at once, an IDB when an interface is added, then packets."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self._interfaces: dict[str, tuple[int, PcapHeader]] = {}
        out.write(section_header())

    def add_interface(self, key: str, header: PcapHeader, name: str, description: str = "") -> int:
        """Declare interface `key` (one per pod); returns its id. Idempotent per key."""
        if key in self._interfaces:
            return self._interfaces[key][0]
        interface_id = len(self._interfaces)
        self._interfaces[key] = (interface_id, header)
        self.out.write(interface_description(header, name, description))
        return interface_id

    def write(self, key: str, record: Record) -> int:
        """Append one packet of interface `key`; returns the bytes written."""
        interface_id, header = self._interfaces[key]
        block = enhanced_packet(interface_id, header, record)
        self.out.write(block)
        return len(block)
