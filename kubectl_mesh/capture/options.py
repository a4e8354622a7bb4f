"""The typed, frozen options of one sniff run (the core never sees argparse)."""

from __future__ import annotations

import math
from dataclasses import dataclass

MODES = ("auto", "exec", "ephemeral", "node")
# Pinned: ships tcpdump and nsenter (nicolaka/netshoot v0.13).
DEFAULT_IMAGE = "docker.io/nicolaka/netshoot:v0.13"
IMAGE_ENV = "KUBECTL_MESH_SNIFF_IMAGE"  # a default image set once, e.g. a mirror
# The longest capture without --duration through a debug container or pod: a bound on how
# long one can outlive a client that could not end it (README: what is left behind, when).
UNTIMED_CAPTURE = 12 * 3600
STOP_SLACK = 60  # seconds for tcpdump to stop and report, and for cleanup


@dataclass(frozen=True)
class SniffOptions:
    """What to capture, how, and where the packets go."""

    target: str | None
    selector: str | None = None
    container: str | None = None  # -c: the container to exec in / the ephemeral target
    interface: str = "any"  # every interface of the pod, as ksniff
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
    # How long a debug container's gate waits for our attach (backends.DEBUG_GATE): our
    # requests' timeout, twice over (the status poll that sees it running, the attach).
    attach_window: float = 20.0

    @property
    def debug_lifetime(self) -> int:
        """Seconds a debug container or pod may live at most (its gate's `timeout`, the pod's
        activeDeadlineSeconds): setup, the capture (--duration, else UNTIMED_CAPTURE), the
        stop."""
        capture = self.duration if self.duration else UNTIMED_CAPTURE
        return math.ceil(self.setup_timeout + self.attach_window + capture + STOP_SLACK)

    @property
    def to_directory(self) -> bool:
        return bool(self.output) and self.output.endswith("/")
