"""Running `kubectl mesh dashboard` in the background through real kubectl, and looking at
what it leaves: its local port and its child processes."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
from urllib.parse import urlsplit

import pytest

from sandbox.testing import pid_alive


def children(pid: int) -> set[int]:
    """The child processes of `pid` (every thread's), from /proc."""
    found: set[int] = set()
    for task in pathlib.Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return found


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


class Dashboard:
    """One `kubectl mesh dashboard ...` process: `url` (its first stdout line), `port`,
    `stop(signum)` → exit code and stderr."""

    def __init__(self, mesh, *args: str, env: dict | None = None):
        self.proc = mesh.popen("dashboard", *args, env=env, text=True)
        self.url = self.proc.stdout.readline().strip()  # "" when it ended without a URL
        self.port = urlsplit(self.url).port if self.url else None

    def stop(self, signum: int = signal.SIGINT, timeout: float = 20) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code, err


@pytest.fixture
def dashboard(mesh):
    """`dashboard(*args)` starts one; whatever a test leaves running is ended."""
    started: list[Dashboard] = []

    def start(*args: str, env: dict | None = None) -> Dashboard:
        d = Dashboard(mesh, *args, env=env)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        for stream in (d.proc.stdout, d.proc.stderr):
            if not stream.closed:
                stream.close()


def kill_quietly(pid: int) -> None:
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
