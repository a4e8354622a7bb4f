"""What `kubectl mesh sniff` leaves behind when things go wrong: a closed terminal, RBAC that
allows setting up but not tearing down, an API server that goes away mid-capture, a capture
that never started. Real kubectl, the sandbox, real Envoys and tcpdump."""

from __future__ import annotations

import os
import signal
import socket
import stat
import threading
import time
import urllib.parse

import pytest
import yaml

from kubectl_mesh.capture.pcap import read_file
from sandbox.testing import pid_alive
from tests.sniff.test_sniff_e2e import _started, debug_pods, gateway_traffic, ref
from tests.sniff.conftest import tcpdumps_for, wait_gone

# In the slow matrix (`make test-fast` leaves it out): sniff's failure-path matrix, a sandbox of
# its own (sniff runs end to end in test_sniff_e2e.py).
pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


@pytest.fixture(scope="module")
def gateway(mesh) -> dict:
    return mesh.pod("istio-system", "app=istio-ingressgateway")


def ephemeral_states(sandbox, pod: dict) -> dict[str, dict]:
    """{ephemeral container name: its state} of `pod` now."""
    now = next(p for p in sandbox.pods(pod["metadata"]["namespace"])
               if p["metadata"]["name"] == pod["metadata"]["name"])
    return {s["name"]: s["state"] for s in now["status"].get("ephemeralContainerStatuses") or []}


# ---- signals ----------------------------------------------------------------------------------


def test_a_closed_terminal_deletes_the_privileged_debug_pod(mesh, sandbox, gateway, tmp_path):
    """SIGHUP (the terminal or SSH session closed) cleans up like Ctrl-C, then exits 129."""
    ip = gateway["status"]["podIP"]
    proc = mesh.popen(ref(gateway), "--mode", "node", "--privileged", "-o",
                      str(tmp_path / "hup.pcap"))
    try:
        _started(ip, proc)
        [name] = debug_pods(sandbox, "istio-system")
        spec = sandbox.pods("istio-system", "app.kubernetes.io/managed-by=kubectl-mesh")[0]["spec"]
        # The cluster side does not depend on us: the kubelet ends it in any case ...
        assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] > 0
        # ... and its gate as soon as our attach is gone, or if it never came.
        assert spec["containers"][0]["stdinOnce"] and spec["containers"][0]["command"][:2] == \
            ["sh", "-c"]
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 129, err
    assert f"debug pod {name}.istio-system deleted".encode() in err
    assert wait_gone(lambda: debug_pods(sandbox, "istio-system"), 10)
    assert wait_gone(lambda: tcpdumps_for(ip), 5)


def test_a_killed_node_mode_sniff_leaves_no_privileged_process_running(mesh, sandbox, gateway,
                                                                      tmp_path):
    """kill -9: no cleanup runs. The debug pod's gate sees our attach go, its container ends,
    and (restartPolicy Never) the pod is done: nothing privileged runs on the node any more.
    The pod object stays until deleted, like any completed pod."""
    ip = gateway["status"]["podIP"]
    proc = mesh.popen(ref(gateway), "--mode", "node", "--privileged", "-o",
                      str(tmp_path / "kill.pcap"))
    name = None
    try:
        _started(ip, proc)
        [name] = debug_pods(sandbox, "istio-system")
        gate = next(c["pid"] for p in sandbox.status() if p["name"] == name
                    for c in p["containers"])
        proc.kill()
        proc.communicate(timeout=30)
        phase = lambda: next(p["status"]["phase"] for p in sandbox.pods("istio-system")  # noqa
                             if p["metadata"]["name"] == name)
        sandbox.wait_for(lambda: phase() in ("Succeeded", "Failed"), timeout=20,
                         what=f"debug pod {name} to end by itself")
        assert not pid_alive(gate)
        assert wait_gone(lambda: tcpdumps_for(ip), 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if name:
            sandbox.kubectl("delete", "pod", name, "-n", "istio-system", check=False)


# ---- RBAC that allows setting up, not tearing down ---------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "ephemeral"])
def test_attach_denied_leaves_no_debug_container_running(mesh, sandbox, gateway, mode):
    """Without `create pods/attach` nothing holds the ephemeral container's gate: it must end
    by itself (Kubernetes cannot remove it), and the command says that it has."""
    config = mesh.kubeconfig_with_token(f"no-attach-{mode}-token", f"noattach-{mode}",
                                        ["create pods/attach"])
    before = set(ephemeral_states(sandbox, gateway))
    result = mesh(ref(gateway), "--mode", mode, "-o", "/dev/null", "--request-timeout", "3s",
                  env=mesh.env(KUBECONFIG=str(config)))
    err = result.stderr.decode()
    assert result.returncode == 4, err
    assert "pods/attach" in err and "its process has ended" in err, err
    states = ephemeral_states(sandbox, gateway)
    [added] = set(states) - before
    assert "terminated" in states[added], states[added]


def test_node_mode_with_delete_denied_exits_1_and_says_how_to_remove_the_pod(mesh, sandbox,
                                                                              gateway, tmp_path):
    config = mesh.kubeconfig_with_token("no-delete-token", "nodelete", ["delete pods"])
    out = tmp_path / "n.pcap"
    with gateway_traffic(gateway):
        result = mesh(ref(gateway), "--mode", "node", "--privileged", "-o", str(out),
                      "--count", "3", env=mesh.env(KUBECONFIG=str(config)))
    err = result.stderr.decode()
    [name] = debug_pods(sandbox, "istio-system")
    try:
        assert result.returncode == 1, err
        assert len(read_file(str(out))[1]) == 3  # the capture itself worked
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"error: debug pod {name}.istio-system (privileged, hostPID) "
                               "could not be deleted"), err
        assert "activeDeadlineSeconds" in last
        assert last.endswith(f"(kubectl delete pod {name} -n istio-system)")
    finally:
        # the command it names removes it
        sandbox.kubectl("delete", "pod", name, "-n", "istio-system")
    assert not debug_pods(sandbox, "istio-system")


# ---- the API server goes away mid-capture ------------------------------------------------------


class Relay:
    """A TCP relay to the API server: `cut()` ends it and every connection through it, as an
    API server that died (or a network that went away) does for its clients."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self.listener]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def test_api_server_gone_mid_capture_exits_5_and_keeps_the_packets(mesh, sandbox, gateway,
                                                                   tmp_path):
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    server = urllib.parse.urlsplit(config["clusters"][0]["cluster"]["server"])
    relay = Relay(server.hostname, server.port)  # the double's 127.0.0.1, the real one's 127.N.0.1
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{relay.port}"
    through_relay = tmp_path / "kubeconfig"
    through_relay.write_text(yaml.safe_dump(config))
    out = tmp_path / "cut.pcap"
    ip = gateway["status"]["podIP"]
    with gateway_traffic(gateway):
        started = time.monotonic()
        proc = mesh.popen(ref(gateway), "-o", str(out), "--duration", "25s",
                          env=mesh.env(KUBECONFIG=str(through_relay)))
        try:
            _started(ip, proc)
            partial = lambda: [p for p in tmp_path.iterdir()  # noqa: E731
                               if p.name.startswith(".cut.pcap.") and p.stat().st_size > 4096]
            sandbox.wait_for(partial, timeout=20, what="packets in the temporary file")
            relay.cut()
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    elapsed = time.monotonic() - started
    text = err.decode()
    assert proc.returncode == 5, text
    assert "was lost mid-capture; the capture is cut short" in text.strip().splitlines()[-1]
    assert elapsed < 25  # it did not wait out --duration
    assert len(read_file(str(out))[1]) > 0  # what came before the cut is kept
    assert wait_gone(lambda: tcpdumps_for(ip), 15), "tcpdump left running"


# ---- -o FILE -----------------------------------------------------------------------------------


def test_a_capture_that_fails_leaves_the_old_file_untouched(mesh, gateway, tmp_path):
    old = tmp_path / "c.pcap"
    old.write_bytes(b"yesterday's capture")
    # istio-proxy runs as 1337 without NET_RAW: tcpdump there cannot capture
    result = mesh(ref(gateway), "--mode", "exec", "-c", "istio-proxy", "-o", str(old))
    assert result.returncode == 1, result.stderr
    assert old.read_bytes() == b"yesterday's capture"
    assert [p.name for p in tmp_path.iterdir()] == ["c.pcap"]  # no temporary file left


def test_the_capture_file_is_private_and_replaces_a_symlink_instead_of_following_it(
        mesh, gateway, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"someone else's file")
    link = tmp_path / "c.pcap"
    link.symlink_to(victim)
    with gateway_traffic(gateway):
        result = mesh(ref(gateway), "-o", str(link), "--count", "2")
    assert result.returncode == 0, result.stderr
    assert victim.read_bytes() == b"someone else's file"
    assert not link.is_symlink() and len(read_file(str(link))[1]) == 2
    assert stat.S_IMODE(os.stat(link).st_mode) == 0o600


# ---- values tcpdump would reject ---------------------------------------------------------------


@pytest.mark.parametrize("flag, value", [("--count", "2147483648"), ("--snaplen", "262145")],
                         ids=["count", "snaplen"])
def test_values_tcpdump_rejects_are_refused_before_touching_the_cluster(mesh, sandbox, gateway,
                                                                        flag, value):
    before = ephemeral_states(sandbox, gateway)
    result = mesh(ref(gateway), "--mode", "ephemeral", "-o", "/dev/null", flag, value)
    assert result.returncode == 2, result.stderr
    assert f"invalid {flag[2:]}".encode() in result.stderr
    assert ephemeral_states(sandbox, gateway).keys() == before.keys()
