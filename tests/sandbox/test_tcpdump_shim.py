"""The sandbox's tcpdump shim, run as a container's process would run it: the user's filter
can only narrow the pod's own traffic. `-d` makes tcpdump print the compiled filter and exit,
so what the shim hands the host tcpdump is compared without capturing anything (it needs
the host tcpdump, scripts/system_tools.sh, and root, as every sandbox capture does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sandbox.testing import ROOT
from sandbox.tools import FACTS_ENV
from sandbox.tools.tcpdump import HOST_TCPDUMP

POD_IP = "127.0.91.7"
OTHER_POD = "127.0.91.8"

def shim(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """`tcpdump ARGS` in a root container with NET_RAW whose image ships tcpdump."""
    facts = {"tools": ["tcpdump"], "runAsUser": 0, "capabilities": ["NET_RAW"]}
    env = dict(os.environ, POD_IP=POD_IP, PYTHONPATH=str(ROOT), **{FACTS_ENV: json.dumps(facts)})
    return subprocess.run([sys.executable, "-m", "sandbox.tools.tcpdump", *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=30)


def compiled(expression: str) -> str:
    """The BPF program the host tcpdump compiles `expression` to on loopback."""
    return subprocess.run([HOST_TCPDUMP, "-i", "lo", "-d", expression], capture_output=True,
                          text=True, check=True, timeout=30).stdout


@pytest.mark.parametrize("user_filter", [
    f"0=1) or (host {OTHER_POD}",
    f"0=1)) or ((host {OTHER_POD}",
    f"tcp) or (host {OTHER_POD}) and (udp",
    "tcp and (port 80",
], ids=["closes-the-scope", "closes-twice", "balanced-but-not-alone", "unbalanced"])
def test_a_filter_that_does_not_compile_alone_is_tcpdumps_syntax_error(user_filter):
    out = shim("-d", user_filter)
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == "tcpdump: can't parse filter expression: syntax error\n"


@pytest.mark.parametrize("user_filter", ["tcp port 80", f"host {OTHER_POD} or udp", "not tcp"],
                         ids=["port", "or", "not"])
def test_a_valid_filter_narrows_the_pods_traffic(user_filter):
    out = shim("-d", "-i", "eth0", user_filter)
    assert out.returncode == 0, out.stderr
    assert out.stdout == compiled(f"host {POD_IP} and ({user_filter})")


def test_a_filter_file_is_scoped_like_an_inline_filter(tmp_path):
    """tcpdump -F ignores the command line's expression, the shim's scoping with it."""
    (tmp_path / "filter").write_text(f"# the other pod\nhost {OTHER_POD}  # only it\n")
    out = shim("-d", "-F", "filter", "ignored by tcpdump", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == compiled(f"host {POD_IP} and (host {OTHER_POD})")
    (tmp_path / "escape").write_text(f"0=1) or (host {OTHER_POD}\n")
    out = shim("-d", "-F", "escape", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (1, "tcpdump: can't parse filter expression: "
                                               "syntax error\n")
    out = shim("-d", "-F", "missing", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (1, "tcpdump: can't open missing: No such file "
                                               "or directory\n")
