"""`kubectl mesh loglevel` end to end: real kubectl, the sandbox, real Envoys. Every change
is checked on the Envoys themselves (`POST /logging` on each pod IP), not through the plugin."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import time

import pytest
import requests

from sandbox.testing import PodPort, envoy_pid

from .conftest import all_levels, envoy_levels

GW = ("deploy/istio-ingressgateway", "-n", "istio-system")
V2 = ("deploy/catalog-v2", "-n", "istioinaction")


@pytest.fixture(scope="module")
def three_replicas(sandbox, mesh):
    """catalog-v2 scaled to 3 ready replicas: {pod ref: its Envoy's admin port}, every
    logger at warning (reset: real pilot-agent starts Envoy with `misc:error` too, the
    chart's global.proxy.componentLogLevel)."""
    sandbox.kubectl("scale", "deploy/catalog-v2", "-n", "istioinaction", "--replicas", "3")

    def ready():
        pods = sandbox.pods("istioinaction", "version=v2")
        ok = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                     for c in p["status"].get("conditions", []))]
        return len(ok) == 3 and {f"{p['metadata']['name']}.istioinaction": PodPort(p, 15000)
                                 for p in ok}

    pods = sandbox.wait_for(ready, timeout=60, what="3 ready catalog-v2 replicas")
    for admin in pods.values():
        sandbox.wait_for(lambda: _answers(admin), timeout=30,
                         what=f"Envoy of {admin.pod['metadata']['name']}")
    assert mesh("loglevel", *V2, "--reset").returncode == 0
    return pods


def _answers(admin):
    try:
        return bool(envoy_levels(admin))
    except (OSError, RuntimeError, http.client.HTTPException):
        return False


def _gateway(sandbox) -> PodPort:
    (pod,) = sandbox.pods("istio-system", "app=istio-ingressgateway")
    return PodPort(pod, 15000)


def test_one_pod_list_set_and_debug_lines_in_its_log(mesh, sandbox):
    admin = _gateway(sandbox)
    listed = mesh("loglevel", *GW)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["LOGGER", "LEVEL"]
    assert dict(line.split() for line in lines[1:]) == envoy_levels(admin)

    out = mesh("loglevel", *GW, "--level", "http:debug")
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""  # data only on stdout; the change is told on stderr
    pod = next(iter(p for p in all_levels(sandbox) if p.startswith("istio-ingressgateway")))
    assert out.stderr == f"{pod}: http warning→debug\n"
    levels = envoy_levels(admin)
    assert levels["http"] == "debug" and levels["router"] == "warning"

    requests.get(f"http://{admin.pod['status']['podIP']}:8080/items",
                 headers={"Host": "catalog.istioinaction.io"}, timeout=5)
    sandbox.wait_for(lambda: "\tdebug\tenvoy http " in sandbox.kubectl(
        "logs", "-n", "istio-system", "deploy/istio-ingressgateway").stdout,
        timeout=10, what="http debug lines in the gateway's log")


def test_reset_uses_the_injector_configmap_then_falls_back_to_warning(mesh, sandbox):
    admin = _gateway(sandbox)
    mesh("loglevel", *GW, "--level", "router:trace")
    # Real Istio's install has the injector's configmap (its injection template in `config`,
    # the chart's values in `values`: global.proxy.logLevel warning); the sandbox istiod has
    # none. Only its values change here, and they are put back.
    got = sandbox.kubectl("get", "configmap", "istio-sidecar-injector", "-n", "istio-system",
                          "-o", "json", check=False)
    installed = json.loads(got.stdout) if got.returncode == 0 else None
    values = json.loads(installed["data"]["values"]) if installed else {}
    values.setdefault("global", {}).setdefault("proxy", {})["logLevel"] = "info"
    if installed:
        sandbox.kubectl("patch", "configmap", "istio-sidecar-injector", "-n", "istio-system",
                        "--type", "merge", "-p", json.dumps({"data": {"values": json.dumps(values)}}))
    else:
        # `kubectl create configmap` sends protobuf, which the sandbox's API server refuses;
        # apply sends JSON.
        sandbox.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
            "data": {"values": json.dumps(values)}}))
    try:
        out = mesh("loglevel", *GW, "--reset")
        assert out.returncode == 0, out.stderr
        assert out.stderr.splitlines()[0] == (
            "resetting to the mesh default level info (global.proxy.logLevel in configmap "
            "istio-system/istio-sidecar-injector)")
        assert set(envoy_levels(admin).values()) == {"info"}
    finally:
        if installed:
            sandbox.kubectl("patch", "configmap", "istio-sidecar-injector", "-n", "istio-system",
                            "--type", "merge", "-p",
                            json.dumps({"data": {"values": installed["data"]["values"]}}))
        else:
            sandbox.kubectl("delete", "configmap", "istio-sidecar-injector", "-n", "istio-system")
    out = mesh("loglevel", *GW, "--reset")
    assert out.returncode == 0, out.stderr
    assert ("resetting to the mesh default level warning (global.proxy.logLevel in configmap "
            "istio-system/istio-sidecar-injector)" if installed else
            "resetting to the mesh default level warning (Istio's default: there is no "
            "configmap istio-system/istio-sidecar-injector)") in out.stderr
    assert set(envoy_levels(admin).values()) == {"warning"}


def test_reset_when_configmaps_are_forbidden_says_so(mesh, sandbox):
    with sandbox.denied("get configmaps@istio-system"):
        out = mesh("loglevel", *GW, "--reset")
    assert out.returncode == 0, out.stderr
    assert "warning (Istio's default: not allowed to get configmap istio-system/" \
           "istio-sidecar-injector)" in out.stderr


def test_three_replicas_set_list_and_differing_pod(mesh, sandbox, three_replicas):
    out = mesh("loglevel", *V2, "--level", "debug")
    assert out.returncode == 0, out.stderr
    assert sorted(out.stderr.splitlines()) == sorted(
        f"{ref}: all 73 loggers warning→debug" for ref in three_replicas)
    for admin in three_replicas.values():
        assert set(envoy_levels(admin).values()) == {"debug"}

    odd = sorted(three_replicas)[1]
    assert mesh("loglevel", odd, "--level", "http=trace").returncode == 0
    listed = mesh("loglevel", *V2)
    rows = {line.split()[0]: line.split()[1:] for line in listed.stdout.splitlines()[1:]}
    assert listed.stdout.splitlines()[0].split() == ["LOGGER", "LEVEL", "DIFFERING", "PODS"]
    assert rows["http"] == ["debug", f"{odd}=trace"] and rows["router"] == ["debug"]
    assert "1 of 73 loggers differ between the 3 pods: http" in listed.stderr
    data = json.loads(mesh("loglevel", *V2, "-o", "json").stdout)
    assert sorted(data["pods"]) == sorted(three_replicas)
    http = next(lg for lg in data["loggers"] if lg["name"] == "http")
    assert http == {"name": "http", "level": "debug", "differing": {odd: "trace"}}
    wide = mesh("loglevel", *V2, "-o", "wide")
    assert wide.returncode == 0, wide.stderr
    header, *lines = wide.stdout.splitlines()
    pods = header.split()[1:]
    assert header.split()[0] == "LOGGER" and sorted(pods) == sorted(three_replicas)
    http_row = dict(zip(pods, next(line.split()[1:] for line in lines if line.split()[0] == "http")))
    assert http_row == {p: ("trace" if p == odd else "debug") for p in pods}

    assert mesh("loglevel", *V2, "--reset").returncode == 0
    for admin in three_replicas.values():
        assert set(envoy_levels(admin).values()) == {"warning"}


@pytest.mark.parametrize("spec, expected", [
    ("verbose", "error: unknown log level 'verbose': valid levels: trace, debug, info, "
                "warning, error, critical, off (warn = warning)"),
    ("http:debug,rooter:trace", "error: unknown logger 'rooter' (no selected pod has it): "
                                "did you mean 'router'? valid loggers: a2a, admin,"),
    ("http:debug,router:loud", "error: unknown log level 'loud'"),
], ids=["bad-level", "bad-logger-in-mixed-spec", "bad-level-in-mixed-spec"])
def test_bad_specs_change_nothing_anywhere(mesh, sandbox, three_replicas, spec, expected):
    before = all_levels(sandbox)
    out = mesh("loglevel", *V2, "--level", spec)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(expected), out.stderr
    assert all_levels(sandbox) == before


def test_for_restores_each_pods_exact_previous_levels(mesh, sandbox, three_replicas):
    refs = sorted(three_replicas)
    assert mesh("loglevel", refs[0], "--level", "http:info,upstream:error").returncode == 0
    assert mesh("loglevel", refs[2], "--level", "router:trace").returncode == 0
    before = all_levels(sandbox)
    proc = subprocess.Popen(mesh.argv("loglevel", *V2, "--level", "debug", "--for", "3s"),
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=mesh.env())
    try:
        _wait_for_countdown(proc)
        for admin in three_replicas.values():
            assert set(envoy_levels(admin).values()) == {"debug"}
        started = time.monotonic()
        rest = proc.stderr.read()
        assert proc.wait(timeout=30) == 0, rest
        assert time.monotonic() - started > 2
    finally:
        proc.kill()
    assert "restored the previous levels on 3 pods" in rest
    assert all_levels(sandbox) == before
    assert mesh("loglevel", *V2, "--reset").returncode == 0


def _wait_for_countdown(proc) -> str:
    seen = ""
    while "restoring the previous levels in" not in seen:
        line = proc.stderr.readline()
        assert line, f"the plugin ended early: {seen}"
        seen += line
    return seen


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_during_for_restores(mesh, sandbox, three_replicas, sig, code):
    before = all_levels(sandbox)
    proc = subprocess.Popen(mesh.argv("loglevel", *V2, "--level", "http:trace,router:debug", "--for", "5m"),
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=mesh.env())
    try:
        _wait_for_countdown(proc)
        assert {envoy_levels(admin)["http"] for admin in three_replicas.values()} == {"trace"}
        proc.send_signal(sig)  # kubectl exec()s the plugin: this pid is the plugin
        rest = proc.stderr.read()
        assert proc.wait(timeout=30) == code, rest
    finally:
        proc.kill()
    assert "interrupted: restoring the previous levels" in rest
    assert all_levels(sandbox) == before


def test_unreachable_replica_before_the_change_is_exit_5_and_nothing_changes(
        mesh, sandbox, three_replicas):
    pid = _envoy_pid(sandbox, sorted(three_replicas)[2])
    before = all_levels(sandbox)
    import os
    os.kill(pid, signal.SIGSTOP)
    try:
        out = mesh("loglevel", *V2, "--level", "debug", "--request-timeout", "1s")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert out.returncode == 5, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: Envoy admin of ")
    assert "; nothing was changed" in out.stderr
    assert all_levels(sandbox) == before


def _envoy_pid(sandbox, ref: str) -> int:
    name, ns = ref.split(".", 1)
    (pod,) = [p for p in sandbox.status() if p["name"] == name and p["namespace"] == ns]
    return envoy_pid(next(c["pid"] for c in pod["containers"] if c["name"] == "istio-proxy"))


def test_replica_unreachable_mid_change_rolls_back_the_others(sandbox, three_replicas):
    """In-process, so the replica can be stopped exactly between validation and change: the
    set times out on it, the replica already changed is put back, the last is never touched
    (each checked on the Envoy itself)."""
    import os

    from kubectl_mesh.clusteroptions import ClusterOptions
    from kubectl_mesh.errors import ExitCode
    from kubectl_mesh.loglevel import change
    from kubectl_mesh.loglevel.levels import LevelSpec
    from kubectl_mesh.session import Session

    before = all_levels(sandbox)
    first, victim, last = sorted(three_replicas)
    pid = _envoy_pid(sandbox, victim)
    told: list[str] = []
    opts = ClusterOptions(kubeconfig=str(sandbox.kubeconfig), namespace="istioinaction",
                          request_timeout=1.0)
    try:
        with Session.open(opts) as session:
            pods = session.proxies("deploy/catalog-v2")
            with pytest.raises(change.ChangeFailed) as failed:
                change.change_levels(pods, LevelSpec.parse("http:debug,router:trace"),
                                     session.admin, concurrency=1, say=told.append,
                                     before_change=lambda plans: os.kill(pid, signal.SIGSTOP))
        assert envoy_levels(three_replicas[first]) == before[first]
        assert envoy_levels(three_replicas[last]) == before[last]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert failed.value.exit_code == ExitCode.UNREACHABLE
    assert str(failed.value) == (
        f"changing levels failed on 1 of 3 pods: {victim}: Envoy admin of {victim} did not "
        f"answer /logging within 1s (raise --request-timeout, or check the pod is not "
        f"overloaded); put back the 1 pod already changed ({first}); not attempted: {last}; "
        f"the levels of {victim} are unknown (a change sent to a pod that did not answer may "
        f"still apply when it recovers)")
    assert told == [f"{first}: http warning→debug; router warning→trace",
                    f"{first}: http debug→warning; router trace→warning (put back)"]
    # What the warning is about: the stopped Envoy runs the request it had queued.
    sandbox.wait_for(lambda: envoy_levels(three_replicas[victim])["http"] == "debug",
                     timeout=10, what="the queued change applied after SIGCONT")
    three_replicas[victim].post("/logging?paths=http:warning,router:warning")
