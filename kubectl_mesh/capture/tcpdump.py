"""The tcpdump command line (an argv list, never a shell line) and its exit statistics."""

from __future__ import annotations

import re
from dataclasses import dataclass

BUFFER_KIB = 32768
_CAPTURED = re.compile(rb"(\d+) packets? captured")
_RECEIVED = re.compile(rb"(\d+) packets? received by filter")
_DROPPED = re.compile(rb"(\d+) packets? dropped by kernel")


def tcpdump_argv(interface: str, capture_filter: str = "", count: int | None = None) -> list[str]:
    """`tcpdump -U -w - -i IFACE [-c N] -- FILTER`.

    `-U -w -`: a raw pcap stream, flushed per packet (live Wireshark). `--` ends the options,
    so a filter that starts with `-` cannot become a flag (`-w /etc/...`); the filter is one
    argv element, so shell metacharacters in it reach tcpdump's parser verbatim.
    """
    # -B: a 32 MiB kernel buffer absorbs bursts while the exec stream (slower than loopback)
    # catches up; tcpdump's 2 MiB default drops packets under a bulk transfer.
    argv = ["tcpdump", "-U", "-w", "-", "-B", str(BUFFER_KIB), "-i", interface]
    if count:
        argv += ["-c", str(count)]
    if capture_filter.strip():
        argv += ["--", capture_filter]
    return argv


@dataclass(frozen=True)
class TcpdumpStats:
    """tcpdump's own report at exit; None where it did not say."""

    captured: int | None = None
    received: int | None = None
    dropped: int | None = None

    @classmethod
    def parse(cls, stderr: bytes) -> "TcpdumpStats":
        def last(pattern):
            found = pattern.findall(stderr)
            return int(found[-1]) if found else None
        return cls(last(_CAPTURED), last(_RECEIVED), last(_DROPPED))


def diagnose(stderr: bytes) -> str:
    """The telling line of a failed tcpdump's stderr (no `listening on` noise)."""
    lines = [l.strip() for l in stderr.decode(errors="replace").splitlines() if l.strip()]
    lines = [l for l in lines if not l.startswith(("listening on", "tcpdump: listening"))
             and "packets" not in l]
    return " ".join(lines[:2])
