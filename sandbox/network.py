"""Pod addresses. Each running sandbox leases its own 127.<n>.0.0/16 (an flock on a file in
the temp dir, held for the sandbox's lifetime), so several sandboxes – parallel test modules,
a demo and a test run – never hand out the same pod IP.

A pod's place on the network is a `PodAddress`: its IP, where its Envoy's admin listens, how
its processes join its network (`enter`, run in the child before exec) and how the node dials
one of its ports (`dial`). On loopback (this module) a pod shares the host's network
namespace on an address of its own; `sandbox.real.kubelet.podnetwork` gives each pod a
network namespace of its own instead."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import pathlib
import socket
import tempfile
import threading
from typing import Callable

LEASE_DIR = pathlib.Path(tempfile.gettempdir()) / "kubectl-mesh-sandbox-nets"


@dataclasses.dataclass
class PodAddress:
    """A pod on the host's network: `ip` is its own loopback address, where its servers and
    its Envoy's admin listen; its processes need no namespace to join."""
    ip: str
    netns: str | None = None  # the name of its network namespace (`ip netns`), if any

    @property
    def admin_address(self) -> str:
        """Where the pod's Envoy admin listens."""
        return self.ip

    @property
    def enter(self) -> Callable[[], None] | None:
        """Run in a child process before exec: joins the pod's network (None: nothing to do)."""
        return None

    def dial(self, port: int, timeout: float = 5.0) -> socket.socket:
        """A TCP connection from the node to the pod's `port` (OSError when refused)."""
        return socket.create_connection((self.ip, port), timeout=timeout)


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

    def attach(self, pod: dict) -> PodAddress:
        """The place on the network of a pod starting on the node."""
        return PodAddress(self.allocate())

    def detach(self, address: PodAddress) -> None:
        """The pod's processes are gone (loopback addresses are not handed out again)."""

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
