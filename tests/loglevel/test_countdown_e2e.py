"""`loglevel --for`'s "restoring ... in" line is there once, whatever stdout and stderr are:
on a terminal one live line rewritten in place and cleared (never a fixed copy above it), on a
pipe one line. Through real kubectl, under a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess

import pytest

GW = ("deploy/istio-ingressgateway", "-n", "istio-system")
COUNTDOWN = "restoring the previous levels in"


def run(mesh, *, stdout_tty: bool, stderr_tty: bool) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a 2 s hold, each stream a terminal or a pipe."""
    ptys, kwargs = [], {}
    for name, tty in (("stdout", stdout_tty), ("stderr", stderr_tty)):
        if tty:
            master, slave = pty.openpty()
            ptys.append((name, master, slave))
            kwargs[name] = slave
        else:
            kwargs[name] = subprocess.PIPE
    proc = subprocess.Popen(mesh.argv("loglevel", *GW, "--level", "http:debug", "--for", "2s"),
                            env=mesh.env(), stdin=subprocess.DEVNULL, **kwargs)
    for _, _, slave in ptys:
        os.close(slave)
    got = {"stdout": b"", "stderr": b""}
    for name, master, _ in ptys:  # a terminal's output until the process closes it
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer is gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        got[name] = b"".join(chunks)
    out, err = proc.communicate(timeout=60)
    got["stdout"] = got["stdout"] or out or b""
    got["stderr"] = got["stderr"] or err or b""
    return proc.returncode, got["stdout"].decode(), got["stderr"].decode()


def screen_lines(text: str) -> list[str]:
    """What stays on a terminal: each line as its last `\\r` rewrite left it, `\\033[K`
    clearing the rest."""
    lines = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        shown = raw.split("\r")[-1]
        lines.append(re.sub(r"\x1b\[K", "", shown))
    return [line for line in lines if line]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stdout_tty", [True, False], ids=["stdout-tty", "stdout-pipe"])
def test_on_a_terminal_the_countdown_is_one_live_line(mesh, stdout_tty):
    code, _, err = run(mesh, stdout_tty=stdout_tty, stderr_tty=True)
    assert code == 0, err
    assert COUNTDOWN in err  # it was shown, live, with what Ctrl-C does
    assert "(Ctrl-C to restore now)" in err
    # no fixed copy: every countdown write rewrites the same line, which is cleared at the end
    assert not [line for line in err.replace("\r\n", "\n").split("\n")
                if COUNTDOWN in line.split("\r")[0]], repr(err)
    assert not [line for line in screen_lines(err) if COUNTDOWN in line], repr(err)
    assert "restored the previous levels on 1 pod" in screen_lines(err)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stdout_tty", [True, False], ids=["stdout-tty", "stdout-pipe"])
def test_on_a_pipe_the_countdown_is_one_line(mesh, stdout_tty):
    code, _, err = run(mesh, stdout_tty=stdout_tty, stderr_tty=False)
    assert code == 0, err
    assert [line for line in err.splitlines() if COUNTDOWN in line] == [
        "restoring the previous levels in 2s (Ctrl-C to restore now)"], err
