"""Starting and stopping the sandbox leaves no process behind, on every exit path."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from sandbox.cgroups import ROOT_FILE
from sandbox.testing import ROOT, RunningSandbox, pid_alive, wait_until

# In the slow matrix (`make test-fast` leaves it out): starts and stops a sandbox per test.
pytestmark = pytest.mark.slow


def _all_dead(pids, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


class CgroupTree:
    """The sandbox's container cgroup tree as it is now (it must hold every container's
    scope). Once the sandbox stopped, its network number - and with it the tree's name - may
    be leased at once by another sandbox on this machine: "gone" means this very directory
    (its inode) and every scope in it are gone, not that nothing has the name."""

    def __init__(self, state: pathlib.Path):
        self.root = pathlib.Path((state / ROOT_FILE).read_text())
        self.inode = self.root.stat().st_ino
        self.scopes = list(self.root.rglob("cri-containerd-*.scope"))
        assert len(self.scopes) == 8, self.root

    def exists(self) -> bool:
        try:
            same = self.root.stat().st_ino == self.inode
        except FileNotFoundError:
            same = False
        return same or any(s.exists() for s in self.scopes)


def test_detached_up_then_down_stops_every_process(tmp_path):
    sb = RunningSandbox(tmp_path / "state").up()
    try:
        status = json.loads(subprocess.run(
            [sys.executable, "-m", "sandbox", "status", "--state", str(sb.state), "-o", "json"],
            cwd=ROOT, capture_output=True, text=True, check=True).stdout)
        supervisor = int((sb.state / "sandbox.pid").read_text())
        cgroups = CgroupTree(sb.state)
        # every container that keeps running (istio-init completed: no process, pid null)
        pids = [c["pid"] for p in status for c in p["containers"] if c["name"] != "istio-init"]
        names = {(p["namespace"], p["name"].rsplit("-", 2)[0]) for p in status}
        assert ("istio-system", "istiod") in names and ("istioinaction", "catalog-v2") in names
        assert all(set(p) == {"namespace", "name", "podIP", "containers"} for p in status)
        assert len(pids) == 8 and all(pid_alive(p) for p in pids)
        # a paused Envoy must not survive shutdown either
        os.kill(next(c["pid"] for p in status for c in p["containers"] if c["name"] == "istio-proxy"),
                signal.SIGSTOP)
    finally:
        sb.down()
    assert _all_dead(pids + [supervisor]), [p for p in pids if pid_alive(p)]
    assert not cgroups.exists() and not (sb.state / ROOT_FILE).exists()


def test_sigterm_to_foreground_up_stops_every_process(tmp_path):
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "up", "--state", str(state)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == str(state / "kubeconfig")
        deadline = time.monotonic() + 30
        while not (state / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [c["pid"] for p in json.loads((state / "status.json").read_text())
                for c in p["containers"] if c["name"] != "istio-init"]
        assert len(pids) == 8
        cgroups = CgroupTree(state)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _all_dead(pids), [p for p in pids if pid_alive(p)]
    assert not (state / "sandbox.pid").exists()
    assert not cgroups.exists() and not (state / ROOT_FILE).exists()


def test_down_cleans_up_after_a_killed_supervisor(tmp_path):
    sb = RunningSandbox(tmp_path / "state").up()
    pids = sb.process_ids()
    cgroups = CgroupTree(sb.state)
    supervisor = int((sb.state / "sandbox.pid").read_text())
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not pid_alive(supervisor), timeout=10, what="the killed supervisor")
    assert any(pid_alive(p) for p in pids)  # orphans: exactly what `down` must clean
    assert cgroups.exists()  # and their cgroups
    sb.down()
    assert _all_dead(pids), [p for p in pids if pid_alive(p)]
    assert not cgroups.exists() and not (sb.state / ROOT_FILE).exists()


def test_up_refuses_a_missing_scenario_file(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sandbox", "up", "--state", str(tmp_path),
                          "--scenario", str(tmp_path / "nope.yaml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "nope.yaml not found" in out.stderr


def test_sandbox_of_a_killed_test_process_stops_by_itself(tmp_path):
    """A test or benchmark killed by its time limit (or kill -9) cannot run its teardown; the
    sandbox it started watches it (`up --owner PID`, which RunningSandbox passes) and stops."""
    state = tmp_path / "state"
    owner = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from sandbox.testing import RunningSandbox\n"
         f"RunningSandbox({str(state)!r}).up()\n"
         "print('up', flush=True)\n"
         "time.sleep(600)\n"],  # an owner that stays until it is killed
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "up"
        supervisor = int((state / "sandbox.pid").read_text())
        pids = [c["pid"] for p in json.loads((state / "status.json").read_text())
                for c in p["containers"] if c["name"] != "istio-init"]
        assert pids and all(pid_alive(p) for p in pids + [supervisor])
    finally:
        owner.kill()
        owner.wait()
    try:
        assert _all_dead(pids + [supervisor], timeout=30), [p for p in pids if pid_alive(p)]
        assert not (state / "sandbox.pid").exists()
    finally:
        subprocess.run([sys.executable, "-m", "sandbox", "down", "--state", str(state)],
                       cwd=ROOT, capture_output=True, timeout=60)
