"""`kubectl mesh dashboard` end to end: real kubectl, the sandbox, real Envoys; the page is
fetched through the local port it prints, and every way it ends is checked to close that
port and leave no child behind."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import stat

import pytest
import requests

from sandbox.testing import PodPort, pid_alive, wait_until

from .conftest import children, kill_quietly, port_open

CATALOG = ("deploy/catalog", "-n", "istioinaction")
NO_BROWSER = "--browser=false"


def _catalog_admin(sandbox) -> PodPort:
    """The catalog pod's Envoy admin as a node-local tool reaches it."""
    (pod,) = sandbox.pods("istioinaction", "app=catalog,version=v1")
    return PodPort(pod, 15000)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                          (signal.SIGHUP, 129)], ids=["INT", "TERM", "HUP"])
def test_serves_envoys_admin_page_until_a_signal_then_closes_the_port(dashboard, sandbox,
                                                                    signum, code):
    d = dashboard(*CATALOG, NO_BROWSER)
    assert d.url.startswith("http://127.0.0.1:") and d.url.endswith("/"), d.url
    page = requests.get(d.url, timeout=10)
    assert page.status_code == 200 and "<title>Envoy Admin</title>" in page.text
    mine = requests.get(d.url + "server_info", timeout=10).json()
    direct = json.loads(_catalog_admin(sandbox).get("/server_info"))
    assert mine["node"]["id"] == direct["node"]["id"]  # the catalog pod's own Envoy
    exit_code, err = d.stop(signum)
    assert exit_code == code, err
    assert not port_open(d.port)
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("forwarding 127.0.0.1:")


def test_many_connections_at_once_and_a_large_answer(dashboard, sandbox):
    import concurrent.futures

    d = dashboard(*CATALOG, NO_BROWSER)
    direct = _catalog_admin(sandbox).get("/help").decode()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: requests.get(d.url + "help", timeout=20).text,
                                range(16)))
    assert answers == [direct] * 16
    dump = requests.get(d.url + "config_dump", timeout=20)
    assert dump.status_code == 200 and "configs" in dump.json()
    assert d.stop()[0] == 130


def test_a_workload_of_several_pods_says_which_pod(dashboard, sandbox):
    d = dashboard("deploy/catalog-v2", "-n", "istioinaction", NO_BROWSER)
    code, err = d.stop()
    assert code == 130
    pods = sorted(p["metadata"]["name"] for p in sandbox.pods("istioinaction", "version=v2"))
    assert err.splitlines()[0] == (f"using pod {pods[0]}.istioinaction (2 pods match "
                                   "deploy/catalog-v2; name a pod to choose another)")


def test_given_port_and_address(dashboard):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    d = dashboard(*CATALOG, NO_BROWSER, "--port", str(free), "--address", "127.0.0.2")
    assert d.url == f"http://127.0.0.2:{free}/"
    assert "Envoy Admin" in requests.get(d.url, timeout=10).text
    assert not port_open(free, "127.0.0.1")  # only the address asked for
    assert d.stop()[0] == 130
    assert not port_open(free, "127.0.0.2")


def test_a_port_in_use_is_a_usage_error(dashboard):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        d = dashboard(*CATALOG, NO_BROWSER, "--port", str(port))
        code, err = d.stop()
    assert d.url == "" and code == 2
    assert err.splitlines()[-1] == (f"error: cannot listen on 127.0.0.1 port {port}: Address "
                                    "already in use (choose another --port, or leave it out "
                                    "for a free one)")


@pytest.mark.parametrize("args, code, message", [
    (("deploy/nope", "-n", "istioinaction"), 3,
     'error: deployment "nope" not found in namespace istioinaction'),
    (("catalog", "-n", "istioinaction", "--address", "example.com"), 2,
     "error: invalid address 'example.com': give an IP address or localhost"),
    (("catalog", "-n", "istioinaction", "--browser=maybe"), 2, "invalid boolean 'maybe'"),
    ((), 2, "error: a target is required"),
    (("istiod", "--revision", "canary"), 3,
     "error: no istiod pod in namespace istio-system with label app=istiod,istio.io/rev=canary"),
], ids=["no-deployment", "bad-address", "bad-browser", "no-target", "no-istiod"])
def test_bad_input_ends_at_once_with_one_line(dashboard, args, code, message):
    d = dashboard(*args, NO_BROWSER)
    exit_code, err = d.stop()
    assert d.url == "" and exit_code == code, err
    assert message in err and "Traceback" not in err


def test_istiod_debug_page(dashboard):
    d = dashboard("istiod-debug", NO_BROWSER)
    assert d.url.endswith("/debug")
    index = requests.get(d.url, timeout=10)
    assert index.status_code == 200 and "<title>Pilot Debug Console</title>" in index.text
    assert "<a href='/debug/syncz'>" in index.text
    syncz = requests.get(d.url + "/syncz", timeout=10).json()
    assert any(s["proxy"].startswith("catalog-") for s in syncz)
    assert d.stop(signal.SIGTERM)[0] == 143


@pytest.mark.parametrize("word", ["istiod", "controlz"])
def test_istiod_controlz(dashboard, sandbox, word):
    d = dashboard(word, NO_BROWSER)
    (pod,) = sandbox.pods("istio-system", "app=istiod")
    istiod = pod["metadata"]["name"]
    home = requests.get(d.url, timeout=10)
    assert home.status_code == 200 and "<h1 id=\"title\">Istio ControlZ</h1>" in home.text
    topics = re.findall(r'<a href="(/\w+z/)">', home.text)
    assert topics == ["/scopez/", "/memz/", "/envz/", "/procz/", "/argz/", "/versionz/",
                      "/signalz/"]
    # argz lists the process's arguments: real istiod's are its Deployment's (`discovery
    # --monitoringAddr=:15014 ...`, one table cell each: pkg/ctrlz/topics/assets/templates/
    # args.html, after an index cell); the scenario's stand-in gives none and the sandbox
    # istiod lists its own `--listen`, in the same table
    argz = requests.get(d.url.rstrip("/") + "/argz/", timeout=10).text
    assert "<th>Index</th>" in argz and "<th>Value</th>" in argz
    for arg in pod["spec"]["containers"][0].get("args") or ["--listen"]:
        assert re.search(rf"<td>\d+</td>\s*<td>{re.escape(arg)}</td>", argz), (arg, argz[-2000:])
    code, err = d.stop()
    assert code == 130 and not port_open(d.port)
    assert f"to ControlZ of {istiod}.istio-system (port 9876)" in err


def test_a_controlz_port_nothing_serves_is_an_error_before_any_url(dashboard, sandbox):
    (istiod,) = [p["metadata"]["name"] for p in sandbox.pods("istio-system", "app=istiod")]
    d = dashboard("istiod", "--ctrlz-port", "9877", NO_BROWSER)
    code, err = d.stop()
    assert d.url == "" and code == 5, err
    (line,) = err.splitlines()
    assert line.startswith(f"error: nothing answers on port 9877 of {istiod}.istio-system "
                           "(ControlZ)")
    assert "is ControlZ on? istiod's --ctrlz_port, default 9876" in line


def test_the_browser_is_opened_and_never_holds_the_command_up(dashboard, mesh, tmp_path):
    """BROWSER is a command webbrowser waits for: this one records the URL and blocks."""
    seen = tmp_path / "seen"
    fake = tmp_path / "browser"
    fake.write_text(f"#!/bin/sh\necho \"$$ $1\" > {seen}\nexec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    d = dashboard(*CATALOG, env=mesh.env(BROWSER=str(fake)))
    pid, url = wait_until(lambda: seen.exists() and seen.read_text().split(),
                          what="the browser to be started")
    try:
        assert url == d.url
        assert "Envoy Admin" in requests.get(d.url, timeout=10).text  # serving meanwhile
        assert d.stop()[0] == 130
        assert not port_open(d.port)
    finally:
        kill_quietly(int(pid))


def test_kubectl_port_forward_fallback_leaves_no_child(dashboard, sandbox):
    """Where the API server refuses the WebSocket, the channel is a kubectl port-forward
    child: the page works through it, and the signal ends it too."""
    refuse = sandbox.state / "refuse-websocket"
    refuse.touch()
    try:
        d = dashboard(*CATALOG, NO_BROWSER)
        assert "Envoy Admin" in requests.get(d.url, timeout=10).text
        kids = children(d.proc.pid)
        assert kids, "expected a kubectl port-forward child"
        code, err = d.stop(signal.SIGTERM)
    finally:
        refuse.unlink()
    assert code == 143, err
    assert not port_open(d.port)
    wait_until(lambda: not any(pid_alive(k) for k in kids), timeout=10,
               what="the kubectl port-forward child to end")


def test_json_of_admin_is_unchanged_through_the_forward(dashboard, sandbox):
    d = dashboard(*CATALOG, NO_BROWSER)
    listeners = requests.get(d.url + "listeners?format=json", timeout=10)
    assert listeners.headers["Content-Type"].startswith("application/json")
    direct = _catalog_admin(sandbox).get("/listeners?format=json")
    assert json.loads(listeners.content) == json.loads(direct)
    assert d.stop()[0] == 130


def test_a_deleted_pod_is_said_and_the_command_serves_on_until_told(dashboard, sandbox):
    """Each connection the pod can no longer take is an error line on stderr (the same
    cause once); the command ends only on its signal, and still closes cleanly."""
    (pod,) = [p["metadata"]["name"] for p in sandbox.pods("istioinaction", "version=v1")]
    d = dashboard(f"pod/{pod}", "-n", "istioinaction", NO_BROWSER)
    assert "Envoy Admin" in requests.get(d.url, timeout=10).text
    sandbox.kubectl("delete", "pod", pod, "-n", "istioinaction")
    for _ in range(3):
        with pytest.raises(requests.ConnectionError):
            requests.get(d.url, timeout=10)
    assert d.proc.poll() is None
    code, err = d.stop()
    assert code == 130 and not port_open(d.port)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert errors[0].startswith("error: forwarding a connection: ") and pod in errors[0]
    sandbox.wait_for(lambda: len(sandbox.pods("istioinaction", "version=v1")) == 1 and
                     _answers(_catalog_admin(sandbox)), timeout=60, what="a new catalog pod")


def _answers(admin: PodPort) -> bool:
    try:
        return admin.request("GET", "/ready", timeout=2)[0] == 200
    except (OSError, http.client.HTTPException):
        return False
