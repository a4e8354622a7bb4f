"""The network between a client and a remote API server, which a loopback double lacks.

On a real cluster every new connection, every request and every message on a port-forward
crosses the network to the API server and on to the kubelet: a round trip of a few ms
in-region to tens of ms over a VPN or across regions. On loopback that is ~0, so work that
waits on round trips (`sync --verify` over 50 port-forwards) looks CPU-bound here and no
client-side concurrency can show. `python -m sandbox rtt 20ms` sets a round-trip time the API
double then imposes, at run time (benchmarks measure several settings in one sandbox):

- a new connection (TCP + TLS handshake): one RTT;
- each HTTP request, upgrades included: one RTT before it is served;
- each client→pod message on a WebSocket port-forward: delivered one RTT after it arrived
  (a delay line, so a burst is not serialised) – a request/response over the forward then
  costs one RTT, as it does over a real one.

The setting lives in `<state>/api-rtt` (seconds, as text); no file means no delay.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Callable

FILE_NAME = "api-rtt"
UNITS = {"ms": 0.001, "s": 1.0}


def parse_rtt(text: str) -> float:
    """`20ms`, `0.02s`, `0.02` → seconds; ValueError for anything else or < 0."""
    text = text.strip()
    for suffix, scale in sorted(UNITS.items(), key=lambda u: -len(u[0])):
        if text.endswith(suffix):
            value = float(text[: -len(suffix)]) * scale
            break
    else:
        value = float(text)
    if value < 0 or value != value:
        raise ValueError(f"round-trip time must be >= 0: {text}")
    return value


class Latency:
    """The round-trip time to impose, read from `<state>/api-rtt` when it changes."""

    def __init__(self, state_dir: str | os.PathLike | None):
        self._path = os.path.join(state_dir, FILE_NAME) if state_dir is not None else None
        self._lock = threading.Lock()
        self._seen: tuple[tuple[int, int], float] | None = None  # ((mtime_ns, inode), rtt)

    def rtt(self) -> float:
        if self._path is None:
            return 0.0
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return 0.0
        mtime = (st.st_mtime_ns, st.st_ino)
        with self._lock:
            if self._seen is not None and self._seen[0] == mtime:
                return self._seen[1]
        try:
            with open(self._path, encoding="utf-8") as f:
                value = parse_rtt(f.read())
        except (OSError, ValueError):
            value = 0.0
        with self._lock:
            self._seen = (mtime, value)
        return value

    def wait(self) -> None:
        """One round trip (a no-op without a setting)."""
        if (rtt := self.rtt()) > 0:
            time.sleep(rtt)

    def delay_line(self, deliver: Callable[[bytes], None]) -> Callable[[bytes | None], None]:
        """`send(msg)` hands msg to `deliver` one RTT after it was sent, in order, without
        holding up the sender; `send(None)` ends the line once everything queued is out."""
        rtt = self.rtt()
        if rtt <= 0:
            return lambda msg: None if msg is None else deliver(msg)
        line: queue.Queue = queue.Queue()

        def run() -> None:
            while (item := line.get()) is not None:
                due, msg = item
                if (left := due - time.monotonic()) > 0:
                    time.sleep(left)
                deliver(msg)

        worker = threading.Thread(target=run, name="api-rtt-line", daemon=True)
        worker.start()

        def send(msg: bytes | None) -> None:
            if msg is None:
                line.put(None)
                worker.join()
            else:
                line.put((time.monotonic() + rtt, msg))

        return send


def write_rtt(state_dir: str | os.PathLike, seconds: float) -> None:
    """Set (or with 0, clear) the round-trip time of a running sandbox."""
    path = os.path.join(state_dir, FILE_NAME)
    if seconds <= 0:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{seconds!r}\n")
    os.replace(tmp, path)
