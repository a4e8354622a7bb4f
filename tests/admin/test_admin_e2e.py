"""`kubectl mesh admin` end to end: real kubectl, the sandbox, real Envoys. What Envoy did is
checked on the Envoys themselves (their admin port as a node-local tool reaches it:
`sandbox.testing.PodPort`), not through the plugin."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess

import pytest

from sandbox.testing import PodPort, envoy_pid

CATALOG = ("deploy/catalog", "-n", "istioinaction")
V2 = ("deploy/catalog-v2", "-n", "istioinaction")


def _admins(sandbox, selector: str) -> dict[str, PodPort]:
    """{pod ref: its Envoy's admin port} of the Running pods of `selector` in istioinaction,
    by name."""
    return {f"{p['metadata']['name']}.istioinaction": PodPort(p, 15000)
            for p in sorted(sandbox.pods("istioinaction", selector),
                            key=lambda p: p["metadata"]["name"])
            if p["status"].get("phase") == "Running"}


def _live(admin: PodPort) -> int:
    """Envoy's `server.live` gauge: 0 after /healthcheck/fail, 1 after /healthcheck/ok."""
    text = admin.get("/stats?filter=^server\\.live$").decode()
    return int(text.split(":")[1])


@pytest.fixture
def v2(sandbox):
    """catalog-v2's two pods, healthy again afterwards whatever the test did."""
    pods = _admins(sandbox, "app=catalog,version=v2")
    assert len(pods) == 2
    yield pods
    for admin in pods.values():
        admin.post("/healthcheck/ok")


def test_a_read_into_a_pipe_is_envoys_answer_byte_for_byte(mesh, sandbox):
    (admin,) = _admins(sandbox, "app=catalog,version=v1").values()
    out = subprocess.run(mesh.argv("admin", *CATALOG, "/help"), capture_output=True,
                         env=mesh.env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == admin.get("/help")
    assert out.stderr == b""


def test_query_characters_reach_envoy_encoded(mesh):
    out = mesh("admin", *CATALOG, "/stats?filter=^(cluster_manager.cds|listener_manager.lds)"
                                  ".version_text$")
    assert out.returncode == 0, out.stderr
    names = sorted(line.split(":")[0] for line in out.stdout.splitlines())
    assert names == ["cluster_manager.cds.version_text", "listener_manager.lds.version_text"]


def test_json_is_indented_on_a_terminal_and_raw_in_a_pipe(mesh):
    piped = mesh("admin", *CATALOG, "/server_info")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith('{\n "version": ')  # Envoy's own one-space indent
    main, child = pty.openpty()
    proc = subprocess.Popen(mesh.argv("admin", *CATALOG, "/server_info"), stdout=child,
                            stderr=subprocess.PIPE, env=mesh.env())
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(30) == 0, proc.stderr.read()
    proc.stderr.close()
    shown = b"".join(chunks).decode().replace("\r\n", "\n")
    assert shown.startswith('{\n  "version": ')
    assert json.loads(shown)["state"] == "LIVE"


def test_a_workload_of_several_pods_reads_one_and_says_which(mesh, v2):
    out = mesh("admin", *V2, "/server_info")
    assert out.returncode == 0, out.stderr
    first = next(iter(v2))
    assert out.stderr == (f"using pod {first} (2 pods match deploy/catalog-v2; "
                          "--all-pods prints every pod's answer)\n")
    assert json.loads(out.stdout)["state"] == "LIVE"


def test_all_pods_prints_each_answer_under_a_header(mesh, v2):
    out = mesh("admin", *V2, "/hot_restart_version", "--all-pods")
    assert out.returncode == 0, out.stderr
    parts = re.split(r"^==> (\S+) <==\n", out.stdout, flags=re.M)
    assert parts[0] == ""
    assert parts[1::2] == list(v2)
    expected = next(iter(v2.values())).get("/hot_restart_version").decode()
    assert [p.rstrip("\n") for p in parts[2::2]] == [expected.rstrip("\n")] * 2


def test_a_change_needs_allow_write_and_nothing_is_sent_without(mesh, sandbox):
    (admin,) = _admins(sandbox, "app=catalog,version=v1").values()
    out = mesh("admin", *CATALOG, "/healthcheck/fail")
    assert out.returncode == 2
    assert out.stderr == ("error: /healthcheck/fail changes the proxy (cause the server to fail "
                          "health checks); nothing was sent (add --allow-write to POST it)\n")
    assert _live(admin) == 1
    out = mesh("admin", *CATALOG, "/quitquitquit")
    assert out.returncode == 2 and "nothing was sent" in out.stderr
    assert admin.request("GET", "/ready")[0] == 200


def test_allow_write_posts_and_says_so_first(mesh, sandbox):
    (ref, admin), = _admins(sandbox, "app=catalog,version=v1").items()
    try:
        out = mesh("admin", *CATALOG, "/healthcheck/fail", "--allow-write")
        assert out.returncode == 0, out.stderr
        assert out.stderr == f"POST /healthcheck/fail to {ref}: cause the server to fail " \
                             "health checks\n"
        assert out.stdout == "OK\n"
        assert _live(admin) == 0
        assert mesh("admin", *CATALOG, "/healthcheck/ok", "--allow-write").returncode == 0
        assert _live(admin) == 1
    finally:
        admin.post("/healthcheck/ok")


def test_a_change_to_a_workload_of_several_pods_needs_all_pods(mesh, v2):
    out = mesh("admin", *V2, "/healthcheck/fail", "--allow-write")
    assert out.returncode == 2
    assert "deploy/catalog-v2 has 2 pods" in out.stderr and "--all-pods" in out.stderr
    assert [_live(admin) for admin in v2.values()] == [1, 1]
    out = mesh("admin", *V2, "/healthcheck/fail", "--allow-write", "--all-pods")
    assert out.returncode == 0, out.stderr
    assert [_live(admin) for admin in v2.values()] == [0, 0]
    assert out.stdout.count("OK\n") == 2 and out.stdout.count("==> ") == 2


def test_no_pod_is_changed_when_one_cannot_be_reached(mesh, sandbox, v2):
    """Every pod is reached before the first is changed: a stopped Envoy means no change."""
    refs = list(v2)
    envoy = envoy_pid(next(c["pid"] for p in sandbox.status()
                           if f"{p['name']}.istioinaction" == refs[1]
                           for c in p["containers"] if c["name"] == "istio-proxy"))
    os.kill(envoy, signal.SIGSTOP)
    try:
        out = mesh("admin", *V2, "/healthcheck/fail", "--allow-write", "--all-pods",
                   "--request-timeout", "1s")
    finally:
        os.kill(envoy, signal.SIGCONT)
    assert out.returncode == 5, out.stderr
    assert refs[1] in out.stderr and "POST" not in out.stderr
    assert [_live(admin) for admin in v2.values()] == [1, 1]


@pytest.mark.parametrize("path, code, message", [
    ("/nope", 3, "answered 404 to GET /nope: invalid path. (GET /help lists Envoy's admin "
                 "endpoints)"),
    ("/config_dump?resource=bogus", 3,
     "answered 404 to GET /config_dump?resource=bogus: bogus not found in config dump"),
    ("/config_dump?name_regex=(", 2, "answered 400 to GET /config_dump?name_regex=("),
], ids=["unknown-endpoint", "unknown-resource", "bad-regex"])
def test_envoy_refusing_is_one_line_with_its_text(mesh, sandbox, path, code, message):
    (ref,) = _admins(sandbox, "app=catalog,version=v1")
    out = mesh("admin", *CATALOG, path)
    assert out.returncode == code, out.stderr
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: Envoy admin of {ref} {message}")


def test_a_bad_logging_level_changes_nothing(mesh, sandbox):
    (admin,) = _admins(sandbox, "app=catalog,version=v1").values()
    before = admin.post("/logging").decode()
    out = mesh("admin", *CATALOG, "/logging?level=loud", "--allow-write")
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1].endswith(
        "answered 400 to POST /logging?level=loud: error: unknown logger level")
    assert admin.post("/logging").decode() == before


@pytest.mark.parametrize("args, code, message", [
    (("deploy/nope", "-n", "istioinaction", "/stats"), 3,
     'error: deployment "nope" not found in namespace istioinaction'),
    (("catalog-nope.istioinaction", "/stats"), 3, "catalog-nope"),
    (("deploy/catalog", "-n", "istioinaction"), 2, "error: a target and an admin PATH"),
    (("deploy/catalog", "-n", "istioinaction", "http://1.2.3.4/stats"), 2,
     "error: give the admin PATH only, not a URL"),
], ids=["no-deployment", "no-pod", "no-path", "url"])
def test_bad_targets_and_arguments(mesh, args, code, message):
    out = mesh("admin", *args)
    assert out.returncode == code, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


@pytest.mark.double_only("a slow API server is the double's modelled round trip (set_rtt)")
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                          (signal.SIGHUP, 129)], ids=["INT", "TERM", "HUP"])
def test_a_signal_mid_request_ends_it_quietly_with_its_code(mesh, sandbox, signum, code):
    """With a slow API server (1 s round trips), the signal arrives while the port-forward
    to the chosen pod is being opened: the command ends at once with 128 + the signal, no
    traceback, nothing on stdout."""
    sandbox.set_rtt(1.0)
    try:
        proc = mesh.popen("admin", *V2, "/config_dump", text=True)
        first = proc.stderr.readline()  # said once the pods are listed, before the request
        assert first.startswith("using pod catalog-v2-"), first
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        sandbox.set_rtt(0)
    assert proc.returncode == code, err
    assert out == "" and "Traceback" not in err and "error" not in err
