"""Pod addresses. Each running sandbox leases its own 127.<n>.0.0/16 (an flock on a file in
the temp dir, held for the sandbox's lifetime), so several sandboxes – parallel test modules,
a demo and a test run – never hand out the same pod IP."""

from __future__ import annotations

import fcntl
import os
import pathlib
import tempfile
import threading

LEASE_DIR = pathlib.Path(tempfile.gettempdir()) / "kubectl-mesh-sandbox-nets"


class AddressPool:
    def __init__(self) -> None:
        LEASE_DIR.mkdir(exist_ok=True)
        self._fd = None
        for n in range(1, 255):
            fd = os.open(LEASE_DIR / f"{n}.lock", os.O_CREAT | os.O_RDWR, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self._fd, self.network = fd, n
            break
        if self._fd is None:
            raise RuntimeError("no free 127.N.0.0/16 network for the sandbox's pods")
        self._lock = threading.Lock()
        self._next = ((x, y) for x in range(0, 256) for y in range(2, 255))

    def allocate(self) -> str:
        with self._lock:
            x, y = next(self._next)
        return f"127.{self.network}.{x}.{y}"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
