"""`kubectl mesh dashboard` beside the real thing: the sandbox istiod's ControlZ and /debug
pages against a real pilot-discovery's (built by `make real-components`, run against the
same sandbox API server), and the Envoy admin page beside `istioctl dashboard envoy`."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest
import requests

from sandbox.real.controlplane import locate_binaries
from sandbox.testing import wait_until


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _get(url: str):
    try:
        resp = requests.get(url, timeout=2)
        return resp if resp.status_code == 200 else None
    except requests.RequestException:
        return None


@pytest.fixture(scope="module")
def real_istiod(sandbox, tmp_path_factory):
    """A real pilot-discovery reading the sandbox's API server: (ControlZ URL, debug URL)."""
    ctrlz, monitoring, grpc, secure, http = _free_ports(5)
    log = tmp_path_factory.mktemp("pilot") / "pilot-discovery.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(locate_binaries() / "pilot-discovery"), "discovery",
             "--kubeconfig", str(sandbox.kubeconfig),
             "--ctrlz_address", "127.0.0.1", "--ctrlz_port", str(ctrlz),
             "--monitoringAddr", f"127.0.0.1:{monitoring}", "--grpcAddr", f"127.0.0.1:{grpc}",
             "--secureGRPCAddr", f"127.0.0.1:{secure}", "--httpAddr", f"127.0.0.1:{http}",
             # no webhook server: its default :15017 clashes with a real-backend sandbox's
             # injection webhook (127.N.0.1:15017), and pilot-discovery then exits
             "--httpsAddr", ""],
            stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    try:
        urls = (f"http://127.0.0.1:{ctrlz}/", f"http://127.0.0.1:{monitoring}/debug")
        wait_until(lambda: proc.poll() is None and all(_get(u) for u in urls), timeout=60,
                   what=f"pilot-discovery's ControlZ and /debug (log: {log})")
        yield urls
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _through_dashboard(mesh, *args: str) -> str:
    proc = mesh.popen("dashboard", *args, "--browser=false", text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url, proc.stderr.read()
        return requests.get(url, timeout=10).text
    finally:
        proc.terminate()
        assert proc.wait(20) == 143
        proc.stdout.close()
        proc.stderr.close()


def _controlz_shape(page: str) -> tuple:
    return (re.search(r"<title>([^<]*)</title>", page).group(1),
            re.search(r'<h1 id="title">([^<]*)</h1>', page).group(1),
            re.findall(r'<a href="(/\w+z/)">([^<]+)</a>', page))


def test_sandbox_controlz_has_the_real_ones_title_and_topics(mesh, real_istiod):
    real = requests.get(real_istiod[0], timeout=10).text
    ours = _through_dashboard(mesh, "istiod")
    assert _controlz_shape(ours) == _controlz_shape(real)
    assert _controlz_shape(real)[2]  # something compared


def test_sandbox_debug_index_rows_are_the_real_ones(mesh, real_istiod):
    row = re.compile(r"<td><a href='(/debug/[^']+)'>\1</a></td><td>([^<]*)</td>")
    real = dict(row.findall(requests.get(real_istiod[1], timeout=10).text))
    ours = dict(row.findall(_through_dashboard(mesh, "istiod-debug")))
    assert ours and all(real.get(path) == text for path, text in ours.items()), (ours, real)
    real_list = requests.get(real_istiod[1] + "/list", timeout=10).json()
    assert {"syncz", "config_dump"} <= set(real_list) and "list" not in real_list


def test_envoy_admin_page_beside_istioctl_dashboard_envoy(sandbox, mesh):
    pod = sandbox.pods("istioinaction", "app=catalog,version=v1")[0]["metadata"]["name"]
    (port,) = _free_ports(1)
    istioctl = subprocess.Popen(
        [str(locate_binaries() / "istioctl"), "dashboard", "envoy", f"{pod}.istioinaction",
         "--browser=false", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=sandbox.env())
    try:
        assert istioctl.stdout.readline().strip() == f"http://localhost:{port}"
        theirs = requests.get(f"http://127.0.0.1:{port}/server_info", timeout=10).json()
    finally:
        istioctl.terminate()
        istioctl.wait(20)
        istioctl.stdout.close()
    proc = mesh.popen("dashboard", f"{pod}.istioinaction", "--browser=false", text=True)
    try:
        url = proc.stdout.readline().strip()
        ours = requests.get(url + "server_info", timeout=10).json()
    finally:
        proc.terminate()
        proc.wait(20)
        proc.stdout.close()
        proc.stderr.close()
    assert ours["node"]["id"] == theirs["node"]["id"]
