"""sniff under least-privilege RBAC: exec and attach fall back to kubectl's SPDY path.

A WebSocket exec or attach is a GET, authorized as `get` and from 1.35 also as `create`
(sandbox/apiserver/version.py); kubectl's SPDY POST needs `create` only. So a Role with
`create pods/exec` and `create pods/attach` alone lets `kubectl exec` work but refuses our
WebSocket: sniff then runs tcpdump through `kubectl exec` (and holds a debug container's gate
through `kubectl attach`), as kubectl itself falls back, and says so once. On 1.34 `get`
alone is enough for the WebSocket. tests/real/test_stream_rbac.py checks the rule against
the real API server."""

from __future__ import annotations

import os
import signal
import time

import pytest

from kubectl_mesh.capture.pcap import read_file
from sandbox.testing import wait_until
from tests.sniff.conftest import Traffic, tcpdumps_for, wait_gone

pytestmark = pytest.mark.timeout(180)
NOTE = "note: RBAC refused the WebSocket pods/"
WEB = ("deploy/web", "-n", "plain", "-c", "web", "--mode", "exec")


@pytest.fixture
def as_user(sandbox, mesh):
    def env(deny: list[str], version: str = "1.37") -> dict:
        (sandbox.state / "kube-version").write_text(version)
        path = sandbox.add_user(f"sniff-{abs(hash((tuple(deny), version))) % 10**8}", deny)
        return mesh.env(KUBECONFIG=str(path))

    yield env
    (sandbox.state / "kube-version").unlink(missing_ok=True)


def kubectl_streams(sandbox) -> list[int]:
    """Pids of `kubectl exec|attach` processes (the fallback's) on this sandbox."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"kubectl") and (b"exec" in argv or b"attach" in argv) \
                and any(str(sandbox.state).encode() in a for a in argv):
            pids.append(int(entry))
    return pids


def test_create_only_captures_through_kubectl_exec_and_says_so_once(mesh, sandbox, web,
                                                                   as_user, tmp_path):
    out = tmp_path / "web.pcap"
    env = as_user(["get pods/exec", "get pods/attach"])
    with Traffic(f"http://{web['status']['podIP']}:3000/"):
        result = mesh(*WEB, "-o", str(out), "--count", "5", env=env)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert err.count(NOTE) == 1, err
    assert "using kubectl exec/attach (SPDY), which needs only create" in err
    assert len(read_file(str(out))[1]) == 5
    assert "tcpdump: 5 packets captured" in err  # tcpdump's stderr, through kubectl
    assert wait_gone(lambda: kubectl_streams(sandbox), 5) and wait_gone(lambda: tcpdumps_for(
        web["status"]["podIP"]), 5)


def test_an_ephemeral_container_is_attached_and_execed_through_kubectl(mesh, sandbox, as_user,
                                                                      tmp_path):
    out = tmp_path / "gw.pcap"
    env = as_user(["get pods/exec", "get pods/attach"])
    result = mesh("deploy/istio-ingressgateway", "-n", "istio-system", "--mode", "ephemeral",
                  "-o", str(out), "--duration", "1s", env=env)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert err.count(NOTE) == 1, err  # attach and exec both fell back: one note
    assert "its process has ended" in err  # the gate saw kubectl attach detach
    assert read_file(str(out))[0] is not None
    assert wait_gone(lambda: kubectl_streams(sandbox), 5)


def test_without_create_both_paths_are_named_in_one_error(mesh, web, as_user, tmp_path):
    env = as_user(["create pods/exec"])
    result = mesh(*WEB, "-o", str(tmp_path / "x.pcap"), "--duration", "1h", env=env)
    err = result.stderr.decode()
    assert result.returncode == 4, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert errors[0].startswith("error: cannot create pods/exec in namespace plain")
    assert "the WebSocket path was refused too: ask for get and create on pods/exec" in errors[0]
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


@pytest.mark.double_only("the real backend is a 1.37 API server; <state>/kube-version makes "
                         "only the double authorize as 1.34")
def test_get_only_is_enough_on_1_34_without_any_note(mesh, web, as_user, tmp_path):
    env = as_user(["create pods/exec", "create pods/attach"], version="1.34")
    with Traffic(f"http://{web['status']['podIP']}:3000/"):
        result = mesh(*WEB, "-o", str(tmp_path / "w.pcap"), "--count", "2", env=env)
    assert result.returncode == 0, result.stderr
    assert NOTE.encode() not in result.stderr


@pytest.mark.slow
def test_a_killed_sniff_leaves_no_kubectl_and_no_tcpdump(mesh, sandbox, web, as_user,
                                                        tmp_path):
    env = as_user(["get pods/exec", "get pods/attach"])
    ip = web["status"]["podIP"]
    proc = mesh.popen(*WEB, "-o", str(tmp_path / "k.pcap"), env=env)
    try:
        wait_until(lambda: tcpdumps_for(ip) and kubectl_streams(sandbox), timeout=30,
                   what="tcpdump through kubectl exec")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    started = time.monotonic()
    assert wait_gone(lambda: tcpdumps_for(ip), 15), "tcpdump outlived a kill -9'd sniff"
    assert wait_gone(lambda: kubectl_streams(sandbox), 15), "kubectl exec outlived a kill -9'd sniff"
    assert time.monotonic() - started < 15


def test_an_api_server_that_refuses_websockets_is_reached_through_kubectl(mesh, sandbox, web,
                                                                         tmp_path):
    # like an HTTP proxy that strips the upgrade: a 400 to every WebSocket, SPDY still works
    flag = sandbox.state / "refuse-websocket"
    flag.write_text("")
    try:
        with Traffic(f"http://{web['status']['podIP']}:3000/"):
            result = mesh(*WEB, "-o", str(tmp_path / "p.pcap"), "--count", "2")
    finally:
        flag.unlink()
    err = result.stderr.decode()
    assert result.returncode == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and notes[0].startswith(
        "note: the API server refused the WebSocket pods/exec (HTTP 400: ") \
        and notes[0].endswith("; using kubectl exec/attach (SPDY)"), err
    assert len(read_file(str(tmp_path / "p.pcap"))[1]) == 2
