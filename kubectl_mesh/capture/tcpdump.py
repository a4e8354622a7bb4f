"""The tcpdump command line (an argv list, never a shell line) and its exit statistics."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubectl_mesh.stdingate import STDIN_GATE, gated  # noqa: F401 - tcpdump runs behind it

# tcpdump -B: the kernel ring between the interface and tcpdump. libpcap's default is 2 MiB;
# a capture behind an exec stream needs far more: while the stream drains at tens to hundreds
# of MB/s (less on a busy node), a burst arrives at hundreds. The ring is kernel memory on the
# node for the life of the capture, so the default is a budget shared by the pods captured
# (BENCHMARKS.md, sniff: 256 MiB keeps a 100 MB loopback burst whole; 64 MiB does not).
BUFFER_BUDGET = 256 * 2**20
MIN_BUFFER = 32 * 2**20


def buffer_per_pod(pods: int) -> int:
    """The default -B of each of `pods` captures: the budget split, at least MIN_BUFFER."""
    return max(MIN_BUFFER, BUFFER_BUDGET // max(1, pods))


_CAPTURED = re.compile(rb"(\d+) packets? captured")
_RECEIVED = re.compile(rb"(\d+) packets? received by filter")
_DROPPED = re.compile(rb"(\d+) packets? dropped by kernel")


def tcpdump_argv(interface: str, capture_filter: str = "", count: int | None = None, *,
                 buffer_bytes: int = BUFFER_BUDGET, snaplen: int | None = None) -> list[str]:
    """`tcpdump -U -w - -p -B KIB [-s N] -i IFACE [-c N] -- FILTER`.

    `-U -w -`: a raw pcap stream, flushed per packet (live Wireshark). `-p`: no promiscuous
    mode, which needs NET_ADMIN (a pod's traffic is addressed to it anyway), so the debug
    container asks for NET_RAW alone (GKE Autopilot refuses NET_ADMIN). `--` ends the options,
    so a filter that starts with `-` cannot become a flag (`-w /etc/...`); the filter is one
    argv element, so shell metacharacters in it reach tcpdump's parser verbatim. `snaplen`
    None keeps tcpdump's default (262144: whole packets).
    """
    argv = ["tcpdump", "-U", "-w", "-", "-p", "-B", str(max(1, buffer_bytes // 1024))]
    if snaplen:
        argv += ["-s", str(snaplen)]
    argv += ["-i", interface]
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
