"""Shell completion against the sandbox: real kubectl's plugin completion (`kubectl __complete
mesh ...` runs the installed `kubectl_complete-mesh-*` executables) and the executables run
directly, with names read from the sandbox's API server."""

from __future__ import annotations

import os
import pathlib
import resource
import socket
import statistics
import subprocess
import sys
import time

import pytest
import yaml

from sandbox.testing import kubectl_binary

BIN = pathlib.Path(sys.executable).parent  # the venv's installed kubectl_complete-mesh-*
NS = "istioinaction"


def complete_via_kubectl(mesh, *words: str, env: dict | None = None) -> list[str]:
    """`kubectl __complete mesh WORDS...`: stdout lines (candidates, then the directive)."""
    out = subprocess.run([kubectl_binary(), "__complete", "mesh", *words], capture_output=True,
                         text=True, timeout=30, env=env or mesh.env())
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def run_completer(mesh, command: str, *words: str, env: dict | None = None):
    """Run `kubectl_complete-mesh-COMMAND WORDS...` as kubectl would; (result, seconds)."""
    started = time.perf_counter()
    out = subprocess.run([str(BIN / f"kubectl_complete-mesh-{command}"), *words],
                         capture_output=True, text=True, timeout=30, env=env or mesh.env(),
                         cwd="/")
    return out, time.perf_counter() - started


def names(sandbox, resource: str, namespace: str | None = None) -> list[str]:
    args = ["get", resource, "-o", "jsonpath={.items[*].metadata.name}"]
    args += ["-n", namespace] if namespace else []
    return sorted(sandbox.kubectl(*args).stdout.split())


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubeconfig_copy(sandbox, path, *, server: str | None = None, namespace: str | None = None,
                    context: str | None = None) -> str:
    """The sandbox's kubeconfig with its server, namespace or context name changed."""
    doc = yaml.safe_load(sandbox.kubeconfig.read_text())
    if server:
        doc["clusters"][0]["cluster"]["server"] = server
    if namespace:
        doc["contexts"][0]["context"]["namespace"] = namespace
    if context:
        doc["contexts"][0]["name"] = doc["current-context"] = context
        doc["clusters"][0]["name"] = doc["contexts"][0]["context"]["cluster"] = context
        doc["users"][0]["name"] = doc["contexts"][0]["context"]["user"] = context
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_target_completes_pod_names_through_real_kubectl(mesh, sandbox):
    pods = names(sandbox, "pods", NS)
    assert len(pods) == 3
    assert complete_via_kubectl(mesh, "routes", "-n", NS, "") == pods + [":4"]
    v2 = [p for p in pods if p.startswith("catalog-v2-")]
    assert len(v2) == 2
    assert complete_via_kubectl(mesh, "clusters", f"--namespace={NS}", "catalog-v2") == v2 + [":4"]
    # Through the dispatcher's completer too (`kubectl_complete-mesh routes ...`).
    out, _ = run_completer(mesh, "routes", "-n", NS, "")
    assert out.stdout.splitlines() == pods + [":4"]


@pytest.mark.parametrize("prefix,resource,namespace", [
    ("deploy/", "deployments", NS),
    ("deployment/", "deployments", "istio-system"),
    ("svc/", "services", "istio-system"),
    ("rs/", "replicasets", NS),
    ("pod/", "pods", "istio-system"),
], ids=lambda v: v if isinstance(v, str) and v.endswith("/") else None)
def test_kind_prefixes_complete_names_of_that_kind(mesh, sandbox, prefix, resource, namespace):
    expected = [prefix + n for n in names(sandbox, resource, namespace)]
    assert expected
    out, _ = run_completer(mesh, "routes", "-n", namespace, prefix)
    assert (out.returncode, out.stdout.splitlines(), out.stderr) == (0, expected + [":4"], "")


def test_deploy_prefix_through_kubectl_filters_by_the_typed_name(mesh):
    assert complete_via_kubectl(mesh, "routes", "-n", NS, "deploy/catalog-") == [
        "deploy/catalog-v2", ":4"]


def test_namespace_values_and_the_context_namespace(mesh, sandbox, tmp_path):
    namespaces = names(sandbox, "namespaces")
    assert {"istio-system", NS, "default"} <= set(namespaces)
    assert complete_via_kubectl(mesh, "routes", "-n", "") == namespaces + [":4"]
    assert complete_via_kubectl(mesh, "routes", "-n", "istio") == ["istio-system", NS, ":4"]
    # Without -n the context's namespace is used (the sandbox's context says `default`).
    assert complete_via_kubectl(mesh, "routes", "") == names(sandbox, "pods", "default") + [":4"]
    in_gateway_ns = kubeconfig_copy(sandbox, tmp_path / "kc", namespace="istio-system")
    assert complete_via_kubectl(mesh, "routes", "--kubeconfig", in_gateway_ns, "") == \
        names(sandbox, "pods", "istio-system") + [":4"]


def test_flags_and_command_names(mesh):
    assert complete_via_kubectl(mesh, "clusters", "--fq") == ["--fqdn", ":4"]
    assert complete_via_kubectl(mesh, "routes", "-o", "") == ["short", "wide", "json", "yaml", ":4"]
    assert complete_via_kubectl(mesh, "routes", "--output=y") == ["--output=yaml", ":4"]
    lines = complete_via_kubectl(mesh, "")
    assert lines[-1] == ":4"
    offered = {line.split("\t")[0] for line in lines[:-1]}
    assert {"routes", "clusters", "listeners", "endpoints", "secrets", "version", "help"} <= offered
    assert [line for line in complete_via_kubectl(mesh, "lis") if "\t" not in line] == [
        "listeners", ":4"]


def test_level_specs_and_response_flags(mesh):
    """`--level` offers the levels and Envoy's logger names (then that logger's levels, no
    space after `logger:`); `--flags` the response flags, item by item."""
    lines = complete_via_kubectl(mesh, "loglevel", "deploy/catalog", "--level", "d")
    assert lines[-1] == ":4" and "debug" in lines and "dns:" in lines
    assert complete_via_kubectl(mesh, "loglevel", "--level", "rou") == ["router:", ":6"]
    assert complete_via_kubectl(mesh, "loglevel", "--level=http:debug,router:t") == [
        "--level=http:debug,router:trace", ":4"]
    assert complete_via_kubectl(mesh, "log", "--level", "http:") == [
        f"http:{level}" for level in ("trace", "debug", "info", "warning", "error",
                                      "critical", "off")] + [":4"]
    lines = complete_via_kubectl(mesh, "accesslog", "deploy/catalog", "--flags", "UT,U")
    assert lines[-1] == ":4" and "UT,UH" in lines and "UT,UF" in lines
    assert not any(line in ("UT,UT", "UT,NR") for line in lines)


def test_context_values_and_kubeconfig_list(mesh, sandbox, tmp_path):
    """KUBECONFIG with two files: the first's current context is unreachable; --context picks
    the sandbox's from the second file, and --kubeconfig typed on the line overrides the list."""
    dead = kubeconfig_copy(sandbox, tmp_path / "dead", server=f"https://127.0.0.1:{closed_port()}",
                           context="other")
    env = mesh.env(KUBECONFIG=os.pathsep.join([dead, str(sandbox.kubeconfig)]))
    assert complete_via_kubectl(mesh, "routes", "--context", "", env=env) == [
        "other", "sandbox", ":4"]
    assert complete_via_kubectl(mesh, "routes", "-n", NS, "", env=env) == [":4"]
    pods = names(sandbox, "pods", NS)
    assert complete_via_kubectl(mesh, "routes", "--context", "sandbox", "-n", NS, "",
                                env=env) == pods + [":4"]
    assert complete_via_kubectl(mesh, "routes", "--kubeconfig", str(sandbox.kubeconfig),
                                "-n", NS, "", env=env) == pods + [":4"]


@pytest.mark.parametrize("case", ["closed-port", "missing-file", "wrong-token", "not-yaml"])
def test_a_bad_kubeconfig_is_quiet_and_fast(mesh, sandbox, tmp_path, case):
    if case == "closed-port":
        kc = kubeconfig_copy(sandbox, tmp_path / "kc", server=f"https://127.0.0.1:{closed_port()}")
    elif case == "missing-file":
        kc = str(tmp_path / "nope")
    elif case == "wrong-token":
        doc = yaml.safe_load(sandbox.kubeconfig.read_text())
        # the only credential: the real backend's admin has a client certificate too
        doc["users"][0]["user"] = {"token": "not-a-token"}
        kc = str(tmp_path / "kc")
        (tmp_path / "kc").write_text(yaml.safe_dump(doc))
    else:
        kc = str(tmp_path / "kc")
        (tmp_path / "kc").write_text("clusters: [unclosed\n")
    for words in (["-n", NS, ""], ["-n", ""], ["deploy/"]):
        out, seconds = run_completer(mesh, "routes", *words, env=mesh.env(KUBECONFIG=kc))
        assert (out.returncode, out.stdout, out.stderr) == (0, ":4\n", ""), words
        assert seconds < 2.5, words
    # Flag completion needs no cluster and still works.
    out, _ = run_completer(mesh, "routes", "--kubeconf", env=mesh.env(KUBECONFIG=kc))
    assert out.stdout == "--kubeconfig\n:4\n"


def test_cluster_backed_completion_is_fast(mesh):
    """Runs on every <TAB>: 150 ms or less for a pod-name completion (the kubernetes client and
    requests are never imported). Measured as the completer's CPU time, which a busy machine
    does not inflate the way it does wall time; wall time only has to stay well below 2 s."""
    out, _ = run_completer(mesh, "routes", "-n", NS, "")  # warm the page cache
    assert len(out.stdout.splitlines()) == 4
    cpu, wall = [], []
    for _ in range(7):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out, seconds = run_completer(mesh, "routes", "-n", NS, "")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert len(out.stdout.splitlines()) == 4
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        wall.append(seconds)
    assert statistics.median(cpu) <= 0.150, cpu
    assert statistics.median(wall) <= 1.0, wall
    env = mesh.env(PYTHONPROFILEIMPORTTIME="1")
    out, _ = run_completer(mesh, "routes", "-n", NS, "", env=env)
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines()}
    assert "kubectl_mesh.kube.kubeconfig" in imported
    assert not {"requests", "kubernetes", "urllib3"} & imported
