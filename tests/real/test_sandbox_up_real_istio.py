"""`python -m sandbox up --backend real --istio real`: the default scenario on real Istio,
installed as `istioctl install` installs the minimal profile (istiod a pod), the scenario's
YAML applied but for what the install provides (sandbox/real/istio/mesh.py); `status` lists
the pods, `down` removes every namespace, link and rule the pods had."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sandbox.testing import ROOT, RunningSandbox, wait_until

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]


def netns_of(state) -> list[str]:
    """The pod network namespaces of this sandbox (named after its pods' uids)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    uids = {p["metadata"]["uid"] for p in json.loads(subprocess.run(
        ["kubectl", "--kubeconfig", str(state / "kubeconfig"), "get", "pods", "-A", "-o", "json"],
        capture_output=True, text=True).stdout)["items"]}
    return [line.split()[0] for line in out.splitlines()
            if line and line.split()[0].split("-", 1)[-1] in uids]


def get(ip: str, host: str) -> int:
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
                          "-H", f"Host: {host}", f"http://{ip}:8080/items"],
                         capture_output=True, text=True)
    return int(out.stdout or 0)


def test_default_scenario_on_real_istio_up_status_down(tmp_path):
    sb = RunningSandbox(tmp_path / "state", backend="istio", timeout=120)
    try:
        sb.up()
        pods = {p["metadata"]["name"].rsplit("-", 2)[0]: p for p in sb.pods()}
        # istiod is istioctl install's Deployment, not the scenario's stand-in
        istiod = pods["istiod"]
        assert istiod["spec"]["containers"][0]["image"] == "registry.istio.io/testing/pilot:latest"
        assert "REVISION_TAGS" not in {e["name"] for e in istiod["spec"]["containers"][0]["env"]}
        # the scenario's gateway, injected with the gateway template: `proxy router`
        gateway = pods["istio-ingressgateway"]
        proxy = gateway["spec"]["containers"][0]
        assert proxy["image"] != "auto" and proxy["args"][:2] == ["proxy", "router"], proxy
        assert proxy["securityContext"]["runAsUser"] == 1337
        # catalog's pods injected: istio-init and istio-proxy as native sidecars
        for name in ("catalog", "catalog-v2"):
            inits = [c["name"] for c in pods[name]["spec"]["initContainers"]]
            assert inits == ["istio-init", "istio-proxy"], inits
        # the scenario's story: the VirtualService's subsets have no DestinationRule: 503 NC
        ip = gateway["status"]["podIP"]
        assert wait_until(lambda: get(ip, "catalog.istioinaction.io") == 503, timeout=60,
                          what="503 from the gateway")
        log = wait_until(lambda: " NC " in (out := sb.kubectl(
            "logs", "-n", "istio-system", "deploy/istio-ingressgateway").stdout) and out,
                         timeout=30, what="NC in the gateway's access log")
        assert '"GET /items HTTP/1.1" 503 NC' in log
        # `status` lists every pod and its containers' processes
        status = subprocess.run([sys.executable, "-m", "sandbox", "status", "--state",
                                 str(sb.state)], cwd=ROOT, capture_output=True, text=True)
        assert status.returncode == 0, status.stderr
        assert "discovery(" in status.stdout and "istio-init(" in status.stdout
        namespaces = netns_of(sb.state)
        assert len(namespaces) == 5, namespaces
        pids = sb.process_ids()
    finally:
        sb.down()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [n for n in namespaces if n in left], left
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")]


@pytest.mark.parametrize("flags, says", [
    (["--istio", "real"], "--istio real needs --backend real"),
    (["--backend", "real", "--istio", "real", "--pod-network", "loopback"],
     "--istio real needs root and --pod-network netns"),
])
def test_real_istio_refused_where_it_cannot_run(tmp_path, flags, says):
    out = subprocess.run([sys.executable, "-m", "sandbox", "up", "--state", str(tmp_path / "s"),
                          *flags], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("error: " + says) and out.stderr.count("\n") == 1, out.stderr
    assert not (tmp_path / "s").exists()
