"""`python -m sandbox up --backend real`: the default scenario on the real control plane –
Deployments through the real controller manager and scheduler, pods run by the sandbox as
the node's kubelet, sidecars from the injection webhook, the sandbox istiod configuring real
Envoys from the real API server's objects – and `down` ending every process it started."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from sandbox.testing import ROOT, SCENARIOS, RunningSandbox, kubectl_binary, pid_alive, wait_until


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    with RunningSandbox(tmp_path_factory.mktemp("real-sb") / "state", backend="real") as s:
        yield s


def _processes_of(state: pathlib.Path) -> list[int]:
    """Processes whose command line names the state directory (control plane, istiod)."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(state).encode() in cmdline and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_the_scenario_runs_through_the_real_controllers(sb):
    pods = {p["metadata"]["name"]: p for p in sb.pods()}
    assert len(pods) == 5, sorted(pods)
    for pod in pods.values():
        owner = pod["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "ReplicaSet"  # made by the real deployment controller
        assert pod["spec"]["nodeName"] == "sandbox-node"  # bound by the real scheduler
        assert any(c["type"] == "Ready" and c["status"] == "True"
                   for c in pod["status"]["conditions"])
    containers = {p["metadata"]["labels"]["app"]: [c["name"] for c in p["spec"]["containers"]]
                  for p in pods.values()}
    inits = {p["metadata"]["labels"]["app"]:
             [(c["name"], c.get("restartPolicy")) for c in p["spec"].get("initContainers", [])]
             for p in pods.values()}
    # the webhook injects istioinaction's pods - istio-init, then a native sidecar, as
    # istiod does with a 1.37 kubelet (as on the double); istiod opts out as Istio's chart
    # labels it
    assert containers["catalog"] == ["catalog"]
    assert inits["catalog"] == [("istio-init", None), ("istio-proxy", "Always")]
    assert containers["istiod"] == ["discovery"]
    assert containers["istio-ingressgateway"] == ["istio-proxy"]
    served = sb.kubectl("get", "virtualservices,gateways", "-n", "istioinaction", "-o", "name")
    assert "virtualservice.networking.istio.io/catalog-v1-v2" in served.stdout


def _gateway_codes(sb, n: int = 5) -> list[int]:
    ip = sb.pod_ip("istio-system", "app=istio-ingressgateway")
    codes = []
    for _ in range(n):
        req = urllib.request.Request(f"http://{ip}:8080/items",
                                     headers={"Host": "catalog.istioinaction.io"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                codes.append(r.status)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
    return codes


def test_envoy_config_follows_the_real_api_servers_objects(sb):
    """503 NC while no DestinationRule defines the subsets; 200 once one is applied."""
    assert set(_gateway_codes(sb)) == {503}
    dr = str(SCENARIOS / "catalog-destinationrule.yaml")
    sb.kubectl("apply", "-f", dr)
    try:
        wait_until(lambda: set(_gateway_codes(sb, 3)) == {200}, 30, "200s after the DestinationRule")
    finally:
        sb.kubectl("delete", "-f", dr)
    wait_until(lambda: set(_gateway_codes(sb, 3)) == {503}, 30, "503s again without it")


def test_a_namespace_deny_is_real_rbac(sb):
    config = str(sb.add_user("ns-limited", ["list pods@istio-system"]))
    env = sb.env(KUBECONFIG=config)

    def get(*args):
        return subprocess.run([kubectl_binary(), "get", "pods", *args], capture_output=True,
                              text=True, env=env, timeout=60)
    assert get("-n", "istioinaction").returncode == 0
    denied = get("-n", "istio-system")
    assert denied.returncode == 1
    assert 'User "ns-limited" cannot list resource "pods"' in denied.stderr
    assert get("-A").returncode == 1  # the cluster scope: ClusterRoleBindings alone
    with sb.denied("list pods@istioinaction"):
        assert sb.kubectl("get", "pods", "-n", "istioinaction", check=False).returncode == 1
        assert sb.kubectl("get", "pods", "-n", "istio-system", check=False).returncode == 0
    assert sb.kubectl("get", "pods", "-n", "istioinaction", check=False).returncode == 0


def test_down_ends_every_process(sb):
    pids = sb.process_ids() + _processes_of(sb.state)
    assert len(pids) >= 9  # 4 components, istiod, 4 Envoys, the apps
    sb.down()
    left = [p for p in pids if pid_alive(p)]
    assert not left, [open(f"/proc/{p}/cmdline").read() for p in left]
    assert not (sb.state / "sandbox.pid").exists()
    assert os.listdir(sb.state / "pods")  # the pods' logs are kept, as the double keeps them


def test_an_unserved_kind_is_exit_2_in_one_line_and_nothing_is_left(tmp_path):
    scenario = tmp_path / "widget.yaml"
    scenario.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    state = tmp_path / "state"
    out = subprocess.run([sys.executable, "-m", "sandbox", "up", "--backend", "real",
                          "--state", str(state), "--scenario", str(scenario),
                          "--owner", str(os.getpid())],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [
        "error: Widget w: the API server does not serve Widget (example.com/v1); a custom kind "
        "needs its CustomResourceDefinition in the scenario"]
    assert not _processes_of(state)
