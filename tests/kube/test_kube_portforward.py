"""Port-forward through the sandbox's API server to real Envoy admin ports."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import socket
import threading

import pytest
import requests

from kube_sandbox import add_user
from kubectl_mesh.errors import ExitCode, ForbiddenError, ToolMissingError, UnreachableError
from kubectl_mesh.kube.api import KubeApi
from kubectl_mesh.kube.kubeconfig import load_config
from kubectl_mesh.admin import open_admin
from kubectl_mesh.kube.portforward import open_forward, port_forward
from kubectl_mesh.kube.targets import Target, resolve


@pytest.fixture(scope="module")
def config(sandbox):
    return load_config(str(sandbox.kubeconfig), namespace="istioinaction")


@pytest.fixture(scope="module")
def pods(config):
    with KubeApi(config) as api:
        return resolve(api, Target.parse("svc/catalog"), "istioinaction")


@pytest.fixture
def kubectl_on_path(sandbox, monkeypatch):
    for key, value in sandbox.env().items():
        if key in ("PATH", "KUBECACHEDIR"):
            monkeypatch.setenv(key, value)


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_admin_ready_and_server_info(config, pods):
    pod = pods[0]
    with port_forward(config, pod, 15000) as port:
        assert get(port, "/ready") == (200, b"LIVE\n")
        status, body = get(port, "/server_info")
        assert status == 200
        info = json.loads(body)
        # the answer really comes from this pod's Envoy
        assert f"/pods/istioinaction/{pod.name}/istio-proxy/" in \
            info["command_line_options"]["config_path"]


def test_each_pod_reaches_its_own_envoy(config, pods):
    assert len(pods) == 3
    for pod in pods:
        with open_admin(config, pod) as admin:
            assert admin.ready()
            path = admin.server_info()["command_line_options"]["config_path"]
            assert f"/pods/{pod.namespace}/{pod.name}/istio-proxy/" in path


def test_listener_binds_loopback_only(config, pods):
    forward = open_forward(config, pods[0], 15000)
    try:
        assert forward.via == "websocket"
        listening = [line.split() for line in open("/proc/net/tcp").read().splitlines()[1:]]
        ours = [row for row in listening if int(row[1].split(":")[1], 16) == forward.local_port
                and row[3] == "0A"]  # LISTEN
        assert [row[1].split(":")[0] for row in ours] == ["0100007F"]  # 127.0.0.1
    finally:
        forward.close()


def test_large_body_and_keep_alive(config, pods):
    """A whole config_dump and several requests over one kept-alive connection."""
    with open_admin(config, pods[0]) as admin:
        dump = admin.config_dump()
        assert any("ClustersConfigDump" in c["@type"] for c in dump["configs"])
        for _ in range(5):
            assert admin.ready()


def test_closed_port_reports_the_forward_error(config, pods):
    with pytest.raises(UnreachableError) as exc:
        with open_admin(config, pods[0], admin_port=15999, timeout=5) as admin:
            admin.server_info()
    assert "port-forward:" in str(exc.value) and "15999" in str(exc.value)


def test_no_threads_or_fds_leak(config, pods):
    def fetch(pod):
        with port_forward(config, pod, 15000) as port:
            assert get(port, "/ready") == (200, b"LIVE\n")

    fetch(pods[0])  # warm up lazy imports and pools
    threads, fds = threading.active_count(), open_fds()
    for _ in range(100):
        fetch(pods[0])
    assert (threading.active_count(), open_fds()) == (threads, fds)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        list(pool.map(fetch, [pods[i % len(pods)] for i in range(20)]))
    assert (threading.active_count(), open_fds()) == (threads, fds)


def test_exit_by_exception_closes_everything(config, pods):
    threads, fds = threading.active_count(), open_fds()
    with pytest.raises(RuntimeError):
        with port_forward(config, pods[0], 15000) as port:
            conn = socket.create_connection(("127.0.0.1", port))  # left open on purpose
            conn.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"LIVE" in conn.recv(4096)
            raise RuntimeError("boom")
    # the relay ended although the client never closed its side
    assert conn.recv(1) == b""
    conn.close()
    assert (threading.active_count(), open_fds()) == (threads, fds)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_forbidden_portforward_names_the_rbac_verb(sandbox, pods):
    path = add_user(sandbox, "viewer", ["create pods/portforward"])
    cfg = load_config(str(path))
    threads, fds = threading.active_count(), open_fds()
    with pytest.raises(ForbiddenError) as exc:
        with port_forward(cfg, pods[0], 15000):
            pass
    assert str(exc.value).startswith(
        "cannot create pods/portforward in namespace istioinaction: ask for RBAC verb create "
        "on pods/portforward")
    assert exc.value.exit_code == ExitCode.FORBIDDEN
    assert (threading.active_count(), open_fds()) == (threads, fds)


@pytest.fixture
def refuse_websocket(sandbox):
    flag = sandbox.state / "refuse-websocket"
    flag.touch()
    try:
        yield
    finally:
        flag.unlink()


def test_websocket_refused_falls_back_to_kubectl(config, pods, refuse_websocket, kubectl_on_path):
    threads, fds = threading.active_count(), open_fds()
    forward = open_forward(config, pods[1], 15000)
    try:
        assert forward.via == "kubectl"
        assert get(forward.local_port, "/ready") == (200, b"LIVE\n")
        for _ in range(3):
            assert requests.get(f"http://127.0.0.1:{forward.local_port}/ready", timeout=5).ok
        proc = forward._proc
    finally:
        forward.close()
    assert proc.poll() is not None  # kubectl was terminated
    assert (threading.active_count(), open_fds()) == (threads, fds)


def test_fallback_with_kubectl_forbidden(sandbox, pods, refuse_websocket, kubectl_on_path):
    path = add_user(sandbox, "viewer2", ["create pods/portforward"])
    with pytest.raises(ForbiddenError, match="cannot create pods/portforward in namespace "
                                             "istioinaction"):
        with port_forward(load_config(str(path)), pods[0], 15000):
            pass


def test_fallback_without_kubectl(config, pods, refuse_websocket, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissingError) as exc:
        with port_forward(config, pods[0], 15000):
            pass
    assert "refused the WebSocket port-forward (HTTP 400" in str(exc.value)
    assert "kubectl, the fallback, is not on PATH" in str(exc.value)
    assert exc.value.exit_code == ExitCode.TOOL_MISSING


def test_missing_pod(config, pods):
    from dataclasses import replace

    from kubectl_mesh.errors import NotFoundError
    with pytest.raises(NotFoundError):
        with port_forward(config, replace(pods[0], name="gone-pod"), 15000):
            pass
