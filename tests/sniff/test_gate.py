"""The stdin gate tcpdump runs behind (kubectl_mesh/stdingate.py STDIN_GATE), run by real sh:
the host's and busybox's (what Alpine-based debug images such as netshoot ship)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from kubectl_mesh.capture.tcpdump import STDIN_GATE, gated
from sandbox.testing import wait_until


@pytest.fixture(params=["host", "busybox"])
def sh(request, tmp_path_factory) -> tuple[str, dict | None]:
    if request.param == "host":
        return shutil.which("sh"), None
    busybox = shutil.which("busybox")
    if busybox is None:  # make test installs it (scripts/system_tools.sh)
        pytest.fail("busybox is not installed: run scripts/system_tools.sh")
    bin_dir = tmp_path_factory.mktemp("busybox")
    for applet in ("sh", "cat", "sleep", "kill", "printf", "touch"):
        (bin_dir / applet).symlink_to(busybox)
    return str(bin_dir / "sh"), dict(os.environ, PATH=str(bin_dir))


def _start(sh, argv, **kwargs) -> subprocess.Popen:
    shell, env = sh
    return subprocess.Popen([shell, "-c", STDIN_GATE, "sh", *argv], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, **kwargs)


def _group_left(proc: subprocess.Popen) -> list[str]:
    """Processes still in the gate's session (the gate itself has exited)."""
    left = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == proc.pid and fields[0] != "Z":  # same process group
                left.append(entry)
    return left


def _running(proc: subprocess.Popen, *argv: str) -> bool:
    """A process in the gate's group runs `argv` (the gated command has started)."""
    for pid in _group_left(proc):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[:-1]
        except OSError:
            continue
        if [os.path.basename(a) for a in map(os.fsdecode, cmdline)] == list(argv):
            return True
    return False


def test_argv_shape():
    assert gated(["tcpdump", "-i", "eth0", "--", "port 80"]) == [
        "sh", "-c", STDIN_GATE, "sh", "tcpdump", "-i", "eth0", "--", "port 80"]


def test_stdin_eof_terminates_the_command_and_leaves_nothing(sh):
    proc = _start(sh, ["sleep", "60"])
    wait_until(lambda: _running(proc, "sleep", "60"), timeout=10, what="the gated sleep 60")
    proc.stdin.close()
    assert proc.wait(timeout=5) == 143  # the command's SIGTERM status
    wait_until(lambda: _group_left(proc) == [], timeout=5, what="the gate's group to be empty")


def test_a_command_that_ends_by_itself_ends_the_gate_with_its_status(sh):
    proc = _start(sh, ["sh", "-c", "sleep 0.5; printf out; exit 3"])
    assert proc.wait(timeout=5) == 3  # stdin is still open: the gate must not wait for it
    assert proc.stdout.read() == b"out"
    proc.stdin.close()
    wait_until(lambda: _group_left(proc) == [], timeout=5, what="the gate's group to be empty")


def test_arguments_are_never_shell_text(sh, tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"$(touch {marker}); `touch {marker}`; touch {marker}"
    proc = _start(sh, ["printf", "%s", hostile])
    # stdin stays open until printf has ended: closing it is the gate's signal to stop the
    # command (communicate() would close it at once and, on a loaded machine, win the race)
    out = proc.stdout.read()
    assert proc.wait(timeout=5) == 0 and out == hostile.encode()
    proc.stdin.close()
    assert not marker.exists()
