"""Hostile or broken input - flags and kubeconfig fields - is a usage error (2) or bad input (6)
with one line naming the flag or the kubeconfig file/cluster/context/field, before anything is
sent: through the real `kubectl-mesh-routes` executable against a plain-HTTP listener that
records every request."""

from __future__ import annotations

import pytest

from plain_http import RecordingServer, mesh, write_kubeconfig

from kubectl_mesh.errors import ExitCode

# In the slow matrix (`make test-fast` leaves it out): one plugin process per hostile value
# (tests/core/test_bad_input.py keeps bad input in the quick loop).
pytestmark = pytest.mark.slow


@pytest.fixture
def server():
    with RecordingServer() as s:
        yield s


@pytest.fixture
def kubeconfig(tmp_path, server):
    return write_kubeconfig(tmp_path / "config", server=server.url)


def last_line(stderr: str) -> str:
    assert "Traceback" not in stderr and "unexpected" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


def one_line(stderr: str) -> str:
    line = last_line(stderr)
    assert len(stderr.strip().splitlines()) == 1, stderr
    return line


# ---- flags -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value, limit", [("1e20", "2562047h"), ("9999999999", "2562047h"),
                                          ("3000000h", "2562047h"), ("597h", "596h"),
                                          ("2147484", "596h")])
def test_a_request_timeout_longer_than_any_clock_is_a_usage_error(tmp_path, kubeconfig, server,
                                                                   value, limit):
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x",
                  "--request-timeout", value, home=tmp_path)
    assert result.code == ExitCode.USAGE, result.stderr
    line = last_line(result.stderr)
    assert "--request-timeout" in line and f"'{value}' (at most {limit}" in line
    assert server.requests == []


def test_the_longest_request_timeout_works_for_requests_and_exec_plugins(tmp_path, server):
    """The longest accepted timeout reaches socket timeouts and the exec plugin's wait (poll()
    in ms) without an OverflowError."""
    import stat
    import sys

    from kubectl_mesh.cli.common import MAX_TIMEOUT

    plugin = tmp_path / "plugin"
    plugin.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps("
                      "{'apiVersion': 'client.authentication.k8s.io/v1',"
                      " 'status': {'token': 'plugin-token'}}))\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    kubeconfig = write_kubeconfig(tmp_path / "config", server=server.url,
                                  user={"exec": {"command": str(plugin)}})
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x",
                  "--request-timeout", f"{MAX_TIMEOUT:.0f}s", home=tmp_path)
    assert result.code == ExitCode.NOT_FOUND, result.stderr  # the listener has no deploy/x
    last_line(result.stderr)
    assert server.requests and server.requests[0][1] == "Bearer plugin-token"


@pytest.mark.parametrize("selector", ["a=(", "app in (a", "app in a", "!", "app=x y",
                                      "app=b,", "-bad=x", "app=x/y", "a>b",
                                      "x/y/z=1", "app notin ()x"])
def test_a_malformed_selector_is_a_usage_error_before_any_request(tmp_path, kubeconfig, server,
                                                                    selector):
    result = mesh("routes", "--kubeconfig", str(kubeconfig), f"--selector={selector}",
                  home=tmp_path)
    assert result.code == ExitCode.USAGE, result.stderr
    line = one_line(result.stderr)
    assert line.startswith(f"error: invalid label selector -l {selector!r}: ")
    assert server.requests == []


@pytest.mark.parametrize("selector", ["app=catalog", "app in (a,b),!canary,version!=v1",
                                      "tier", "app.kubernetes.io/name==x,rev notin (,old)",
                                      "gen>3", "app in ()", "app=="])
def test_a_valid_selector_is_sent_as_typed(tmp_path, kubeconfig, server, selector):
    from urllib.parse import parse_qs, urlsplit

    result = mesh("routes", "--kubeconfig", str(kubeconfig), "-l", selector, home=tmp_path)
    assert result.code == ExitCode.NOT_FOUND, result.stderr
    sent = [parse_qs(urlsplit(path).query).get("labelSelector") for path, _ in server.requests]
    assert sent == [[selector]]


@pytest.mark.parametrize("namespace", ["x?y", "../x", "..", "a/b", "UPPER", "x#y", "-x",
                                       "a" * 64, "x.y"])
def test_a_namespace_that_is_no_dns_label_is_a_usage_error(tmp_path, kubeconfig, server,
                                                           namespace):
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x",
                  f"--namespace={namespace}", home=tmp_path)
    assert result.code == ExitCode.USAGE, result.stderr
    line = last_line(result.stderr)
    assert "-n/--namespace" in line and f"invalid namespace {namespace!r}" in line
    assert server.requests == []


@pytest.mark.parametrize("target", ["pod/x?y", "deploy/a..b", "x%2F..", "deploy/" + "a" * 254,
                                    "-x"])
def test_a_target_that_is_no_object_name_is_a_usage_error(tmp_path, kubeconfig, server, target):
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "--", target, home=tmp_path)
    assert result.code == ExitCode.USAGE, result.stderr
    assert one_line(result.stderr).startswith(f"error: invalid target {target!r}")
    assert server.requests == []


def test_a_dotted_name_whose_tail_is_no_namespace_is_looked_up_as_a_name(tmp_path, kubeconfig,
                                                                         server):
    """`pod/web.x1-vvv…` cannot mean namespace `x1-vvv…` (longer than a DNS label): only the
    whole name is asked for."""
    mesh("routes", "--kubeconfig", str(kubeconfig), "pod/web.x1-" + "v" * 70, home=tmp_path)
    paths = [path for path, _ in server.requests]
    assert paths[0] == f"/api/v1/namespaces/default/pods/web.x1-{'v' * 70}"
    assert not any("/namespaces/x1-" in p for p in paths)


@pytest.mark.parametrize("url, words", [("http://[::1", "is not a URL"),
                                        ("", "needs a URL"),
                                        ("   ", "needs a URL"),
                                        ("http://host:99999/", "bad port"),
                                        ("ftp://host/", "is not http or https")])
def test_a_bad_trace_url_is_a_usage_error(tmp_path, kubeconfig, server, url, words):
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x", "--trace", url,
                  home=tmp_path)
    assert result.code == ExitCode.USAGE, result.stderr
    line = one_line(result.stderr)
    assert line.startswith("error: --trace") and words in line
    assert server.requests == []


# ---- kubeconfig fields -----------------------------------------------------------------------


@pytest.mark.parametrize("server_value, words", [
    ("http://[::1", "is not a URL"),
    ("https://[::1:6443", "is not a URL"),
    ("https://host:70000", "is not a URL"),
    ("https://", "has no host"),
    ("https://host:6443/?x=1", "has a query"),
], ids=["ipv6-open", "ipv6-port", "port-range", "no-host", "query"])
def test_a_broken_server_url_is_bad_input_naming_the_cluster(tmp_path, server_value, words):
    kubeconfig = write_kubeconfig(tmp_path / "config", server=server_value)
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x", home=tmp_path)
    assert result.code == ExitCode.BAD_INPUT, result.stderr
    line = one_line(result.stderr)
    assert f'cluster "c" in kubeconfig {kubeconfig}' in line and words in line


GOOD = {"apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "alice", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "alice"}}]}


def _with(path: str, value):
    import copy

    doc = copy.deepcopy(GOOD)
    keys = path.replace("]", "").replace("[", ".").split(".")
    node = doc
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return doc


@pytest.mark.parametrize("field, value, kind", [
    ("clusters", "str", "a string"),
    ("users", {"alice": {}}, "a mapping"),
    ("contexts[0]", "x", "a string"),
    ("contexts[0].context", ["x"], "a list"),
    ("clusters[0].cluster.server", 6443, "a number"),
    ("clusters[0].cluster.insecure-skip-tls-verify", "yes", "a string"),
    ("users[0].user.token", ["t"], "a list"),
    ("users[0].user.exec", "aws", "a string"),
    ("users[0].user.exec", {"command": "aws", "args": "eks get-token"}, "a string"),
    ("contexts[0].context.namespace", 7, "a number"),
    ("current-context", ["x"], "a list"),
    ("clusters[0].name", {"n": 1}, "a mapping"),
], ids=lambda v: str(v)[:30])
def test_a_wrongly_typed_kubeconfig_field_is_bad_input_naming_it(tmp_path, field, value, kind):
    kubeconfig = write_kubeconfig(tmp_path / "config", doc=_with(field, value))
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x", home=tmp_path)
    assert result.code == ExitCode.BAD_INPUT, result.stderr
    line = one_line(result.stderr)
    assert line.startswith(f"error: kubeconfig {kubeconfig}: {field}") and f"is {kind}" in line


@pytest.mark.parametrize("namespace", ["../x", "x?y", "Prod"])
def test_a_context_namespace_that_is_no_dns_label_is_bad_input(tmp_path, server, namespace):
    kubeconfig = write_kubeconfig(tmp_path / "config", server=server.url,
                                  context={"cluster": "c", "user": "alice",
                                           "namespace": namespace})
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x", home=tmp_path)
    assert result.code == ExitCode.BAD_INPUT, result.stderr
    line = one_line(result.stderr)
    assert f'context "x" in kubeconfig {kubeconfig}: namespace {namespace!r}' in line
    assert server.requests == []
    # -n overrides the context's namespace, so the bad one does not matter then
    result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x", "-n", "ok",
                  home=tmp_path)
    assert result.code == ExitCode.NOT_FOUND, result.stderr


# ---- request paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("namespace, name, expected", [
    ("x?y", "a", "/api/v1/namespaces/x%3Fy/pods/a"),
    ("..", "a", "/api/v1/namespaces/%2E%2E/pods/a"),
    ("ns", "../../nodes/n", "/api/v1/namespaces/ns/pods/..%2F..%2Fnodes%2Fn"),
    ("ns", "a#b c", "/api/v1/namespaces/ns/pods/a%23b%20c"),
    ("ns", ".", "/api/v1/namespaces/ns/pods/%2E"),
], ids=["query", "dotdot-ns", "slashes", "fragment-space", "dot"])
def test_names_from_anywhere_are_quoted_path_segments(namespace, name, expected):
    """Names also come from API answers (owners, pods of a workload), which no flag check
    covers: every path the API client builds quotes them."""
    from kubectl_mesh.kube.api import pod_path, resource_path

    assert resource_path("pods", namespace, name) == expected
    assert pod_path(namespace, name, "portforward") == expected + "/portforward"


@pytest.mark.parametrize("namespace, sent", [("x?y", []), ("../x", []),
                                             ("ok", ["/api/v1/namespaces/ok/pods?limit=500"])],
                         ids=["query", "dotdot", "valid"])
def test_completion_never_pastes_a_bad_namespace_into_a_path(tmp_path, kubeconfig, server,
                                                             namespace, sent):
    import os
    import subprocess

    from plain_http import BIN

    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    out = subprocess.run([str(BIN / "kubectl_complete-mesh-routes"), "--kubeconfig",
                          str(kubeconfig), "-n", namespace, ""], capture_output=True, text=True,
                         env=env, timeout=30)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert [path for path, _ in server.requests] == sent
