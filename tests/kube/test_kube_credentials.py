"""Credentials never leak: not into messages (with or without --debug), not over plain HTTP
unless the kubeconfig says http://, and an exec credential plugin is bounded in time and
never left running. Through the real `kubectl-mesh-routes` executable, against a plain-HTTP
listener on 127.0.0.1 that records whether an Authorization header arrived."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time

import pytest

from plain_http import BIN, SECRET, RecordingServer, mesh, write_kubeconfig

from kubectl_mesh.errors import ExitCode
from sandbox.testing import wait_until


@pytest.fixture
def server():
    with RecordingServer() as s:
        yield s


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    return lines[0]


# ---- tokens that cannot be a header value ----------------------------------------------------


@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
@pytest.mark.parametrize("token", [f"{SECRET}\r\nX-Injected: {SECRET}", f"{SECRET}\x00",
                                   f"{SECRET}\u00e9\u20ac"],
                         ids=["crlf", "nul", "non-ascii"])
def test_a_token_that_is_no_header_value_is_bad_input_and_never_printed(tmp_path, server,
                                                                        token, debug):
    kubeconfig = write_kubeconfig(tmp_path / "config", server=server.url,
                                  user={"token": token})
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x", *debug, home=tmp_path)
    assert result.code == ExitCode.BAD_INPUT, result.stderr
    assert SECRET not in result.both
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: the token of user "alice"') and "HTTP header" in last
    if not debug:
        one_line(result.stderr)
    assert server.requests == []


@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
def test_a_token_file_that_is_not_a_token_is_never_printed(tmp_path, server, debug):
    """`tokenFile: /etc/shadow` (here a file shaped like it) must not end up on stderr."""
    shadow = tmp_path / "shadow"
    shadow.write_text(f"root:$6${SECRET}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    kubeconfig = write_kubeconfig(tmp_path / "config", server=server.url,
                                  user={"tokenFile": str(shadow)})
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x", *debug, home=tmp_path)
    assert result.code == ExitCode.BAD_INPUT, result.stderr
    assert SECRET not in result.both and "daemon" not in result.both
    last = result.stderr.strip().splitlines()[-1]
    assert f"the token file {shadow} of user \"alice\"" in last
    if not debug:
        one_line(result.stderr)
    assert server.requests == []


def test_a_yaml_error_does_not_quote_the_token_line(tmp_path, monkeypatch):
    """PyYAML's pure-Python loader (the krew zipapp may have no C loader) quotes the offending
    line in its error, which may be the token line: the message must not carry it, nor may
    the exception chain a --debug traceback prints."""
    import yaml

    from kubectl_mesh.errors import BadInputError
    from kubectl_mesh.kube.kubeconfig import read_kubeconfig

    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    path = tmp_path / "config"
    path.write_text(f"users:\n- name: alice\n  user:\n    token: {SECRET}: oops\n")
    with pytest.raises(BadInputError) as info:
        read_kubeconfig(str(path))
    error = info.value
    assert SECRET not in str(error) and "\n" not in str(error)
    assert "line 4" in str(error)
    assert error.__cause__ is None and error.__suppress_context__


# ---- no token over plain HTTP unless the kubeconfig says http:// -----------------------------


@pytest.mark.parametrize("scheme", ["htps", "ftp", "HTTP+unix"])
def test_unsupported_scheme_is_refused_and_nothing_is_sent(tmp_path, server, scheme):
    kubeconfig = write_kubeconfig(tmp_path / "config",
                                  server=f"{scheme}://127.0.0.1:{server.port}",
                                  user={"token": SECRET})
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x", home=tmp_path)
    assert result.code == ExitCode.BAD_INPUT, result.stderr
    line = one_line(result.stderr)
    assert f'unsupported protocol scheme "{scheme.lower()}"' in line
    assert 'cluster "c"' in line and str(kubeconfig) in line
    assert SECRET not in result.both
    assert server.requests == []


def test_a_server_without_scheme_and_without_tls_does_not_get_the_token(tmp_path, server):
    """client-go would make `127.0.0.1:PORT` http:// (no CA, no client cert): the kubeconfig
    did not say http://, so the token is not sent in clear text."""
    kubeconfig = write_kubeconfig(tmp_path / "config", server=f"127.0.0.1:{server.port}",
                                  user={"token": SECRET})
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x", home=tmp_path)
    assert result.code == ExitCode.BAD_INPUT, result.stderr
    line = one_line(result.stderr)
    assert "has no scheme" in line and "https://" in line
    assert server.requests == []


def test_an_explicit_http_server_gets_the_token_with_a_warning(tmp_path, server):
    kubeconfig = write_kubeconfig(tmp_path / "config", server=server.url,
                                  user={"token": SECRET})
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x", home=tmp_path)
    assert result.code == ExitCode.NOT_FOUND, result.stderr  # the listener knows no deploy/x
    assert server.requests and all(auth == f"Bearer {SECRET}" for _, auth in server.requests)
    warning = result.stderr.splitlines()[0]
    assert warning.startswith("warning: sending the token of user 'alice' in clear text")
    assert SECRET not in result.both


def test_an_http_server_without_credentials_is_fine(tmp_path, server):
    kubeconfig = write_kubeconfig(tmp_path / "config", server=f"127.0.0.1:{server.port}")
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x", home=tmp_path)
    assert result.code == ExitCode.NOT_FOUND, result.stderr
    assert server.requests and all(auth is None for _, auth in server.requests)
    assert "warning" not in result.stderr


# ---- exec credential plugins -----------------------------------------------------------------


def hanging_plugin(tmp_path):
    """A plugin that records its pid and a child's pid, then waits for that child forever."""
    pids = tmp_path / "pids"
    plugin = tmp_path / "hanging-plugin"
    plugin.write_text(f"#!/bin/sh\nsleep 300 &\necho $$ $! > {pids}.tmp\nmv {pids}.tmp {pids}\n"
                      "wait\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    return plugin, pids


def exec_kubeconfig(tmp_path, server, plugin):
    return write_kubeconfig(tmp_path / "config", server=server.url, user={"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
        "interactiveMode": "Never"}})


def alive(pid: int) -> bool:
    """Whether `pid` is a process that still runs (a zombie has finished)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill_leftovers(pids_file) -> None:
    if pids_file.exists():
        for pid in map(int, pids_file.read_text().split()):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_hanging_exec_plugin_is_bounded_by_the_request_timeout(tmp_path, server):
    plugin, pids = hanging_plugin(tmp_path)
    kubeconfig = exec_kubeconfig(tmp_path, server, plugin)
    started = time.monotonic()
    try:
        result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x",
                      "--request-timeout", "1s", home=tmp_path, timeout=30)
        elapsed = time.monotonic() - started
        assert result.code == ExitCode.UNREACHABLE, result.stderr
        line = one_line(result.stderr)
        assert str(plugin) in line and "did not finish within 1s" in line
        assert "--request-timeout" in line
        assert elapsed < 15
        plugin_pid, child_pid = map(int, pids.read_text().split())
        # the whole process group went with it, the plugin's own child included
        wait_until(lambda: not alive(plugin_pid) and not alive(child_pid), 10,
                   "the plugin and its child to be gone")
    finally:
        kill_leftovers(pids)
    assert server.requests == []


def test_a_killed_kubectl_mesh_leaves_no_exec_plugin_behind(tmp_path, server):
    """kill -9 cannot be caught: the kernel's parent-death signal has to end the plugin."""
    plugin, pids = hanging_plugin(tmp_path)
    kubeconfig = exec_kubeconfig(tmp_path, server, plugin)
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    proc = subprocess.Popen([str(BIN / "kubectl-mesh-routes"), "--kubeconfig", str(kubeconfig),
                             "deploy/x", "--request-timeout", "0"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(pids.exists, 20, "the plugin to start")
        plugin_pid, child_pid = map(int, pids.read_text().split())
        proc.kill()
        proc.wait(timeout=10)
        wait_until(lambda: not alive(plugin_pid) and not alive(child_pid), 10,
                   "the plugin and its child to be gone after kill -9")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_leftovers(pids)


def test_an_exec_plugin_gets_a_deadline_without_request_timeout(tmp_path):
    """--request-timeout 0 (none) still bounds the plugin, by the module's default."""
    from kubectl_mesh.errors import UnreachableError
    from kubectl_mesh.kube import credplugin

    plugin, pids = hanging_plugin(tmp_path)
    try:
        with pytest.raises(UnreachableError, match="did not finish within 0.5s"):
            credplugin.exec_credentials({"command": str(plugin)}, "user 'u'", timeout=0.5)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(credplugin, "DEFAULT_TIMEOUT", 0.3)
            with pytest.raises(UnreachableError, match="did not finish within 0.3s"):
                credplugin.exec_credentials({"command": str(plugin)}, "user 'u'", timeout=None)
    finally:
        kill_leftovers(pids)
