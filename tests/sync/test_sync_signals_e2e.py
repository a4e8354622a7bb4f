"""`kubectl mesh sync --wait` on the kubectl port-forward fallback, ended by a signal: the
kubectl child must die with it (SIGTERM and SIGHUP: cleanup; kill -9: the stdin gate)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from sandbox.testing import MeshCli as Mesh
from sandbox.testing import pid_alive
from tests.sync.test_sync_e2e import (GATEWAY_PREFIX, _envoy_pid, _patch_timeout, _undo_timeout,
                                      _wait_synced, paused)

# In the slow matrix (`make test-fast` leaves it out): a signal matrix over the kubectl
# port-forward fallback, a sandbox of its own.
pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.fixture(scope="module")
def stale_gateway_on_kubectl_fallback(sandbox):
    """The gateway's Envoy paused after a push (so `sync --wait` keeps waiting) and the API
    server refusing WebSocket port-forwards (so sync forwards to istiod through kubectl)."""
    mesh = Mesh(sandbox)
    _wait_synced(mesh)
    flag = sandbox.state / "refuse-websocket"
    try:
        with paused(_envoy_pid(sandbox, GATEWAY_PREFIX)):
            _patch_timeout(sandbox, "4s")
            flag.touch()
            yield mesh
    finally:
        flag.unlink(missing_ok=True)
        _undo_timeout(sandbox)
        _wait_synced(mesh)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129),
                                       (signal.SIGKILL, -signal.SIGKILL)],
                         ids=["SIGTERM", "SIGHUP", "kill-9"])
def test_kubectl_port_forward_dies_with_sync(stale_gateway_on_kubectl_fallback, sig, code):
    mesh = stale_gateway_on_kubectl_fallback
    proc = subprocess.Popen(mesh.argv("sync", "--wait", "--timeout", "90s"), env=mesh.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        progress = proc.stderr.readline()  # the first poll went through the forward
        assert "waiting" in progress, progress + proc.stderr.read()
        children = descendants(proc.pid)
        forwards = [p for p in children if " port-forward " in cmdline(p)]
        assert forwards, [cmdline(p) for p in children]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == code, err
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [cmdline(p) for p in children if pid_alive(p)]
        assert not left, f"left running after {signal.Signals(sig).name}: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
