"""Exec credential plugins run as client-go runs them, end to end through kubectl against the
sandbox: interactiveMode, stderr passed through, KUBERNETES_EXEC_INFO, the apiVersion check,
the credential kept until its expirationTimestamp and renewed once on a 401.

The fake plugin (a Python script written here) records each run - its KUBERNETES_EXEC_INFO,
whether stdin is a terminal and what it could read from it - and prints the next token of
a list (the last one again when the list is used up)."""

from __future__ import annotations

import base64
import datetime
import json
import os
import pty
import stat
import sys

import pytest
import yaml

from sandbox.testing import MeshCli, RunningSandbox

GATEWAY = ("deploy/istio-ingressgateway", "-n", "istio-system")
V1 = "client.authentication.k8s.io/v1"

PLUGIN = """\
import json, os, select, sys
runs = {runs!r}
tokens = {tokens!r}
count = len(open(runs).read().splitlines()) if os.path.exists(runs) else 0
readable = select.select([0], [], [], 0)[0] if not sys.stdin.closed else []
stdin = os.read(0, 100).decode() if readable and not os.isatty(0) else ""
with open(runs, "a") as f:
    f.write(json.dumps({{"info": json.loads(os.environ["KUBERNETES_EXEC_INFO"]),
                        "tty": os.isatty(0), "stdin": stdin}}) + "\\n")
print("plugin: fetching a token", file=sys.stderr)
status = {{"token": tokens[min(count, len(tokens) - 1)]}}
if {expires!r}:
    status["expirationTimestamp"] = {expires!r}
print(json.dumps({{"apiVersion": {answer!r}, "kind": "ExecCredential", "status": status}}))
"""


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    with RunningSandbox(tmp_path_factory.mktemp("sb") / "state") as running:
        running.add_user("plugin-user", [], token="plugin-good-token")
        yield running


@pytest.fixture(scope="module")
def mesh(sb) -> MeshCli:
    return MeshCli(sb)


class Plugin:
    def __init__(self, sb, tmp_path, tokens=("plugin-good-token",), expires=None,
                 answer=V1, **exec_fields):
        self.runs_file = tmp_path / "runs"
        script = tmp_path / "fake-plugin"
        script.write_text(f"#!{sys.executable}\n" + PLUGIN.format(
            runs=str(self.runs_file), tokens=list(tokens), expires=expires, answer=answer))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        config = yaml.safe_load(sb.kubeconfig.read_text())
        for entry in config["users"]:
            entry["user"] = {"exec": {"apiVersion": V1, "command": str(script),
                                      "interactiveMode": "IfAvailable", **exec_fields}}
        self.config = config
        self.kubeconfig = tmp_path / "kubeconfig-plugin"
        self.write()

    def write(self):
        self.kubeconfig.write_text(yaml.safe_dump(self.config))

    @property
    def runs(self) -> list[dict]:
        if not self.runs_file.exists():
            return []
        return [json.loads(line) for line in self.runs_file.read_text().splitlines()]


def run(mesh, plugin, *args, **kwargs):
    return mesh("routes", *GATEWAY, *args, env=mesh.env(KUBECONFIG=str(plugin.kubeconfig)),
                **kwargs)


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# ---- renewal ----------------------------------------------------------------------------------


def test_a_token_the_server_rejects_is_renewed_once_and_the_request_retried(sb, mesh, tmp_path):
    plugin = Plugin(sb, tmp_path, tokens=["plugin-revoked-token", "plugin-good-token"])
    out = run(mesh, plugin)
    assert out.returncode == 0, out.stderr
    assert "catalog.istioinaction.io" in out.stdout
    assert len(plugin.runs) == 2


def test_a_plugin_whose_tokens_are_all_rejected_runs_twice_and_says_401(sb, mesh, tmp_path):
    plugin = Plugin(sb, tmp_path, tokens=["bad-1", "bad-2", "bad-3"])
    out = run(mesh, plugin)
    assert out.returncode == 4, out.stderr
    assert "rejected our credentials (401)" in error_line(out.stderr)
    assert len(plugin.runs) == 2


def test_the_credential_is_kept_until_it_expires(sb, mesh, tmp_path):
    later = (datetime.datetime.now(datetime.timezone.utc)
             + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (tmp_path / "later").mkdir()
    (tmp_path / "past").mkdir()
    plugin = Plugin(sb, tmp_path / "later", expires=later)
    out = run(mesh, plugin)
    assert out.returncode == 0, out.stderr
    assert len(plugin.runs) == 1
    expired = Plugin(sb, tmp_path / "past", expires="2020-01-01T00:00:00Z")
    out = run(mesh, expired)
    assert out.returncode == 0, out.stderr
    assert len(expired.runs) > 2  # once more for every request


# ---- the protocol -----------------------------------------------------------------------------


def test_the_plugins_stderr_reaches_ours(sb, mesh, tmp_path):
    out = run(mesh, Plugin(sb, tmp_path))
    assert out.returncode == 0, out.stderr
    assert "plugin: fetching a token" in out.stderr


def test_exec_info_carries_the_cluster_when_asked(sb, mesh, tmp_path):
    plugin = Plugin(sb, tmp_path, provideClusterInfo=True)
    cluster = plugin.config["clusters"][0]["cluster"]
    cluster["extensions"] = [{"name": "client.authentication.k8s.io/exec",
                              "extension": {"audience": "mesh"}}]
    plugin.write()
    out = run(mesh, plugin)
    assert out.returncode == 0, out.stderr
    spec = plugin.runs[0]["info"]["spec"]
    assert plugin.runs[0]["info"]["apiVersion"] == V1
    assert spec["interactive"] is False
    assert spec["cluster"]["server"] == cluster["server"]
    assert spec["cluster"]["config"] == {"audience": "mesh"}
    assert spec["cluster"]["certificate-authority-data"] == cluster["certificate-authority-data"]


def test_exec_info_reads_the_ca_file_and_names_the_proxy(tmp_path):
    from kubectl_mesh.kube.credplugin import exec_cluster

    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    spec = exec_cluster({"server": "https://k:6443", "certificate-authority": str(ca),
                         "tls-server-name": "kube", "proxy-url": "http://proxy:3128",
                         "disable-compression": True}, "user 'u'")
    assert base64.b64decode(spec["certificate-authority-data"]) == ca.read_bytes()
    assert (spec["tls-server-name"], spec["proxy-url"], spec["disable-compression"]) == (
        "kube", "http://proxy:3128", True)


def test_an_answer_of_another_api_version_is_one_line_naming_the_plugin(sb, mesh, tmp_path):
    plugin = Plugin(sb, tmp_path, answer="client.authentication.k8s.io/v1beta1")
    out = run(mesh, plugin)
    assert out.returncode == 6, out.stderr
    line = error_line(out.stderr)
    assert "fake-plugin" in line and "configured to use API version " + V1 in line
    assert "v1beta1" in line


# ---- interactiveMode --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["Never", "IfAvailable"])
def test_without_a_terminal_stdin_is_not_connected(sb, mesh, tmp_path, mode):
    plugin = Plugin(sb, tmp_path, interactiveMode=mode)
    out = run(mesh, plugin, input="what the command reads\n")
    assert out.returncode == 0, out.stderr
    assert plugin.runs[0]["stdin"] == "" and plugin.runs[0]["tty"] is False
    assert plugin.runs[0]["info"]["spec"]["interactive"] is False


def test_always_without_a_terminal_fails_with_client_gos_words(sb, mesh, tmp_path):
    plugin = Plugin(sb, tmp_path, interactiveMode="Always")
    out = run(mesh, plugin, input="")
    assert out.returncode == 6, out.stderr
    line = error_line(out.stderr)
    assert "fake-plugin" in line and "standard input is not a terminal" in line
    assert plugin.runs == []


@pytest.mark.parametrize("mode, interactive", [("Always", True), ("IfAvailable", True),
                                               ("Never", False)])
def test_on_a_terminal_the_plugin_gets_it_unless_never(sb, mesh, tmp_path, mode, interactive):
    plugin = Plugin(sb, tmp_path, interactiveMode=mode)
    leader, follower = pty.openpty()
    try:
        proc = mesh.popen("routes", *GATEWAY, env=mesh.env(KUBECONFIG=str(plugin.kubeconfig)),
                          stdin=follower)
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 0, err
    assert plugin.runs[0]["tty"] is interactive
    assert plugin.runs[0]["info"]["spec"]["interactive"] is interactive


def test_a_port_forward_opened_after_the_token_was_revoked_renews_it(sb, tmp_path):
    """A long command: the API server stops taking the plugin's token after the kubeconfig was
    loaded (its rbac.json changes, as a 15-minute token expires); the next port-forward
    WebSocket meets a 401, runs the plugin again and is retried with the new token."""
    from types import SimpleNamespace

    from sandbox.apiserver import auth

    from kubectl_mesh.kube.kubeconfig import load_config
    from kubectl_mesh.kube.portforward import ChannelDialer

    sb.add_user("plugin-short", [], token="plugin-short-lived")
    sb.add_user("plugin-next", [], token="plugin-next-token")
    plugin = Plugin(sb, tmp_path, tokens=["plugin-short-lived", "plugin-next-token"],
                    interactiveMode="Never")
    config = load_config(str(plugin.kubeconfig), environ={**os.environ, "KUBECONFIG": ""})
    assert len(plugin.runs) == 1
    table = sb.state / "rbac.json"
    tokens = json.loads(table.read_text())["tokens"]
    del tokens["plugin-short-lived"]
    auth.write_tokens(table, tokens)
    pod = sb.pods("istio-system")[0]["metadata"]
    dialer = ChannelDialer(config, SimpleNamespace(name=pod["name"], namespace="istio-system"),
                           15000, timeout=10)
    try:
        dialer.start()
    finally:
        dialer.close()
    assert len(plugin.runs) == 2


def _revoke(sb, token: str) -> None:
    """The API server stops taking `token` (its rbac.json changes, as a short token expires)."""
    from sandbox.apiserver import auth

    table = sb.state / "rbac.json"
    tokens = json.loads(table.read_text())["tokens"]
    del tokens[token]
    auth.write_tokens(table, tokens)


def test_a_watch_whose_token_is_revoked_mid_run_renews_it_once_and_goes_on(sb, tmp_path,
                                                                          monkeypatch):
    """The watch is resumed after the server ends it (timeoutSeconds); the resumed request
    meets a 401, runs the plugin again, and the events go on."""
    import queue
    import threading

    from kubectl_mesh.kube import watch
    from kubectl_mesh.kube.api import KubeApi
    from kubectl_mesh.kube.kubeconfig import load_config

    monkeypatch.setattr(watch, "WATCH_SECONDS", 1)
    sb.add_user("plugin-watch", [], token="plugin-watch-token")
    sb.add_user("plugin-watch-next", [], token="plugin-watch-next")
    plugin = Plugin(sb, tmp_path, tokens=["plugin-watch-token", "plugin-watch-next"],
                    interactiveMode="Never")
    config = load_config(str(plugin.kubeconfig), environ={**os.environ, "KUBECONFIG": ""})
    pod = sb.pods("istio-system")[0]["metadata"]
    selector = ",".join(f"{k}={v}" for k, v in sorted(pod["labels"].items()))
    events: queue.Queue = queue.Queue()
    with KubeApi(config) as api:
        pods = watch.PodWatch(api, "istio-system", selector)

        def follow():
            try:
                for etype, obj in pods.events():
                    events.put((etype, obj["metadata"].get("annotations") or {}))
            except Exception as e:  # noqa: BLE001 - the test reads it from the queue
                events.put(e)

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        try:
            assert events.get(timeout=20)[0] == "ADDED"
            _revoke(sb, "plugin-watch-token")
            # Past the 1 s the server gives each watch: the next one met the 401.
            sb.wait_for(lambda: len(plugin.runs) == 2, timeout=20, what="the plugin run again")
            sb.kubectl("annotate", "pod", pod["name"], "-n", "istio-system",
                       "mesh-test/renewed=yes", "--overwrite")
            while True:
                got = events.get(timeout=20)
                assert not isinstance(got, Exception), got
                if got[1].get("mesh-test/renewed") == "yes":
                    break
        finally:
            pods.close()
            thread.join(10)
    assert len(plugin.runs) == 2


def test_a_followed_log_opened_after_the_token_was_revoked_renews_it(sb, tmp_path):
    """A pod that joins an `accesslog --follow` late: its log stream meets a 401, runs the
    plugin again and is opened with the new token."""
    from kubectl_mesh.accesslog.source import LogQuery, PodLogStream
    from kubectl_mesh.kube.api import KubeApi
    from kubectl_mesh.kube.kubeconfig import load_config

    sb.add_user("plugin-log", [], token="plugin-log-token")
    sb.add_user("plugin-log-next", [], token="plugin-log-next")
    plugin = Plugin(sb, tmp_path, tokens=["plugin-log-token", "plugin-log-next"],
                    interactiveMode="Never")
    config = load_config(str(plugin.kubeconfig), environ={**os.environ, "KUBECONFIG": ""})
    _revoke(sb, "plugin-log-token")
    pod = sb.pods("istio-system")[0]["metadata"]
    with KubeApi(config) as api:
        stream = PodLogStream(api, "istio-system", pod["name"], LogQuery(follow=True))
        with stream:
            assert len(plugin.runs) == 2
