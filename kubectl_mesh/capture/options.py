"""The typed, frozen options of one sniff run (the core never sees argparse)."""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("auto", "exec", "ephemeral", "node")
# Pinned: ships tcpdump and nsenter (nicolaka/netshoot v0.13).
DEFAULT_IMAGE = "docker.io/nicolaka/netshoot:v0.13"


@dataclass(frozen=True)
class SniffOptions:
    """What to capture, how, and where the packets go."""

    target: str | None
    selector: str | None = None
    container: str | None = None  # -c: the container to exec in / the ephemeral target
    interface: str = "eth0"
    filter: str = ""
    output: str | None = None  # None = Wireshark, "-" = stdout, "DIR/" = a file per pod
    count: int | None = None
    duration: float | None = None
    max_size: int | None = None  # bytes written, all pods together
    mode: str = "auto"
    image: str = DEFAULT_IMAGE
    privileged: bool = False  # required for --mode node
    summary: bool = False
    buffer_bytes: int | None = None  # tcpdump -B per pod; None = tcpdump.buffer_per_pod()
    snaplen: int | None = None  # tcpdump -s; None = whole packets
    concurrency: int = 10
    setup_timeout: float = 60.0  # ephemeral container / debug pod start

    @property
    def to_directory(self) -> bool:
        return bool(self.output) and self.output.endswith("/")
