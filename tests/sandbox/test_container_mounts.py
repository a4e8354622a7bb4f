"""A container's volumes at their mountPaths (sandbox/real/kubelet/mounts.py): the process sees
each volume where its volumeMount says, read-only where it says, even where the node has no
such directory, and the node's own file system is left as it was."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from sandbox.real.kubelet import mounts

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")
ABSENT = "/var/run/secrets/kubernetes.io/serviceaccount"  # no such directory on the node


def run(tmp_path: pathlib.Path, *binds: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, mounts.__file__, "--scratch", str(tmp_path / "scratch"),
                           *(x for b in binds for x in ("--bind", b)), "--workdir", "/", "--",
                           "sh", "-c", script], capture_output=True, text=True, timeout=30)


def test_volumes_appear_at_their_mount_paths_and_the_node_is_untouched(tmp_path):
    assert not os.path.exists(ABSENT) and not os.path.exists("/etc/cacerts")
    token, certs = tmp_path / "token", tmp_path / "certs"
    token.mkdir()
    certs.mkdir()
    (token / "token").write_text("t0ken")
    (certs / "ca.pem").write_text("root")
    out = run(tmp_path, f"{token}={ABSENT}:ro", f"{certs}=/etc/cacerts", script=(
        f"cat {ABSENT}/token; echo; cat ./etc/cacerts/ca.pem; echo; cat /etc/hostname >/dev/null"
        f" && echo node-files-visible; touch {ABSENT}/x 2>/dev/null || echo read-only;"
        " touch /etc/cacerts/written && echo writable; ls /run >/dev/null && echo run-kept"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["t0ken", "root", "node-files-visible", "read-only", "writable",
                                  "run-kept"]
    assert (certs / "written").exists()  # written through to the volume's directory
    assert not os.path.exists(ABSENT) and not os.path.exists("/etc/cacerts")
    assert not os.path.exists("/run/secrets")


def test_a_failed_mount_is_one_line_and_exit_128(tmp_path):
    out = run(tmp_path, f"{tmp_path / 'missing'}=/var/run/secrets/x", script="true")
    assert out.returncode == 128
    assert out.stderr.startswith("sandbox: cannot set up the container's mounts:"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1

