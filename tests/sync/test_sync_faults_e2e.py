"""`sync --verify` on what istiod alone cannot see, with faults the sandbox istiod injects
(pod annotation `sandbox.kubectl-mesh.io/xds-fault`, sandbox/istiod/faults.py), through REAL
kubectl against real Envoys. A module of its own, so its sandbox (conftest's, one per
module) is its own: a half-open fault leaves the gateway's Envoy in reconnect back-off,
which other modules' tests should not wait for."""

from __future__ import annotations

import json
import time

import pytest


# In the slow matrix (`make test-fast` leaves it out): the injected-fault matrix, a sandbox of its
# own (sync runs end to end in test_sync_e2e.py).
pytestmark = [pytest.mark.timeout(240), pytest.mark.slow,
              pytest.mark.sandbox_istiod_only(
                  "the faults are the sandbox istiod's (pod annotation "
                  "sandbox.kubectl-mesh.io/xds-fault, sandbox/istiod/faults.py); real istiod "
                  "has no switch to lose a push or half-open a stream")]
FAULT = "sandbox.kubectl-mesh.io/xds-fault"
VS_PATCH = '[{"op":"add","path":"/spec/http/0/timeout","value":"7s"}]'
VS_UNDO = '[{"op":"remove","path":"/spec/http/0/timeout"}]'


@pytest.fixture(scope="module")
def gateway(sandbox) -> str:
    [pod] = sandbox.pods("istio-system", "istio=ingressgateway")
    return pod["metadata"]["name"]


def _annotate(sandbox, pod: str, value: str | None) -> None:
    sandbox.kubectl("annotate", "pod", pod, "-n", "istio-system", "--overwrite",
                    f"{FAULT}={value}" if value else f"{FAULT}-")


def _verify(mesh) -> tuple[int, dict]:
    out = mesh("sync", "--verify", "-o", "json")
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else {}


def _heal(mesh, sandbox, pod: str) -> None:
    _annotate(sandbox, pod, None)
    sandbox.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type", "json",
                    "-p", VS_UNDO, check=False)
    out = mesh("sync", "--wait", "--timeout", "90s")
    assert out.returncode == 0, out.stderr
    code, data = _verify(mesh)
    assert code == 0, data


def test_lost_push_is_lagging_only_from_the_proxy_side(mesh, sandbox, gateway):
    ref = f"{gateway}.istio-system"
    _annotate(sandbox, gateway, "lose-pushes")
    try:
        sandbox.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type",
                        "json", "-p", VS_PATCH)
        # istiod believes the gateway ACKed the new routes: plain sync is all green...
        out = mesh("sync", "--wait", "--timeout", "30s", "-o", "json")
        assert out.returncode == 0, out.stderr
        row = next(p for p in json.loads(out.stdout) if p["name"] == ref)
        assert row["types"]["RDS"]["status"] == "SYNCED"
        # ...but the gateway's Envoy still runs the old version, and --verify says so.
        code, data = _verify(mesh)
        assert code == 7, data
        lagging = [f for f in data["findings"] if f["check"] == "LAGGING"]
        assert [f["proxy"] for f in lagging] == [ref], data["findings"]
        assert lagging[0]["type"] == "RDS"
        assert "istiod says SYNCED but RDS http.8080: Envoy has" in lagging[0]["detail"]
        # the others are fine (the catalog sidecars' UNCHECKED findings are "info": Istio's
        # default stats matcher keeps no RDS, EDS or stream stats there)
        assert all(f["proxy"] == ref for f in data["findings"] if f["severity"] != "info")
        # A proxy whose xDS is paused like this still answers its admin API, so --diff can
        # show exactly what it is missing: the new route timeout istiod would send.
        diff = mesh("sync", gateway, "-n", "istio-system", "--diff")
        assert diff.returncode == 7, diff.stderr
        assert "Clusters Match" in diff.stdout and "Listeners Match" in diff.stdout
        assert "Routes Don't Match" in diff.stdout
        changed = [l.replace(" ", "") for l in diff.stdout.splitlines()
                   if l.startswith(("-", "+")) and not l.startswith(("---", "+++"))]
        assert changed == ['-"timeout":"7s",', '+"timeout":"0s",'], diff.stdout
    finally:
        _heal(mesh, sandbox, gateway)


def _istiod_view(sandbox, proxy: str) -> dict:
    """The sandbox istiod's own `/debug/config_dump` and syncz entry for `proxy`."""
    import requests

    ip = sandbox.pod_ip("istio-system", "app=istiod")
    dump = requests.get(f"http://{ip}:15014/debug/config_dump", params={"proxyID": proxy},
                        timeout=10).json()
    syncz = requests.get(f"http://{ip}:15014/debug/syncz", timeout=10).json()
    return {"dump": dump, "syncz": next(e for e in syncz if e["proxy"] == proxy)}


def test_push_to_other_proxies_leaves_an_in_sync_proxy_not_lagging(mesh, sandbox, gateway):
    """A route change only the gateway gets still moves istiod's global push version, which
    its config_dump stamps on every proxy's sections: the catalog sidecars got nothing, and
    their Envoys rightly still run the version they were last sent."""
    catalog = next(p["name"] for p in json.loads(mesh("sync", "-o", "json").stdout)
                   if p["name"].startswith("catalog-"))
    before = _istiod_view(sandbox, catalog)["syncz"]
    sandbox.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type", "json",
                    "-p", VS_PATCH)
    try:
        out = mesh("sync", "--wait", "--timeout", "30s", "-o", "json")
        assert out.returncode == 0, out.stderr
        view = _istiod_view(sandbox, catalog)
        # The sidecar got no push, yet istiod's dump for it carries a newer version than the
        # one it was sent: a rule comparing that with Envoy's versions would say LAGGING.
        assert view["syncz"]["cluster_sent"] == before["cluster_sent"]
        assert view["syncz"]["route_sent"] == before["route_sent"]
        clusters = next(c for c in view["dump"]["configs"]
                        if c["@type"].endswith(".ClustersConfigDump"))
        assert not before["cluster_sent"].startswith(clusters["versionInfo"])
        code, data = _verify(mesh)
        assert code == 0, data
        assert not [f for f in data["findings"] if f["check"] == "LAGGING"], data["findings"]
    finally:
        sandbox.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type",
                        "json", "-p", VS_UNDO, check=False)
        out = mesh("sync", "--wait", "--timeout", "60s")
        assert out.returncode == 0, out.stderr


def test_half_open_stream_is_disconnected_while_istiod_still_lists_it(mesh, sandbox, gateway):
    ref = f"{gateway}.istio-system"
    _annotate(sandbox, gateway, "half-open")
    try:
        deadline = time.monotonic() + 30
        while True:
            code, data = _verify(mesh)
            found = [f for f in data.get("findings", []) if f["check"] == "DISCONNECTED"]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert code == 7, data
        assert [f["proxy"] for f in found] == [ref], data
        assert "ADS stream to the control plane is down" in found[0]["detail"]
        assert ref in [p["name"] for p in data["proxies"]]  # istiod still lists it
        istiod = next(p["istiod"] for p in data["proxies"] if p["name"] == ref)
        assert f"istiod {istiod} still lists it" in found[0]["detail"]
    finally:
        _heal(mesh, sandbox, gateway)


BARE_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: short-lived
  namespace: istioinaction
  labels: {app: short-lived}
  annotations: {sandbox.kubectl-mesh.io/xds-fault: half-open}
spec:
  containers:
  - name: app
    image: istioinaction/catalog:latest
    ports: [{containerPort: 3000, name: http}]
"""


def test_deleted_pod_istiod_still_lists_is_gone(mesh, sandbox):
    """A half-open connection outlives its pod in istiod's list (until keepalive): --verify
    reports the listed proxy as GONE instead of failing on the missing pod."""
    ref = "short-lived.istioinaction"
    sandbox.kubectl("apply", "-f", "-", input=BARE_POD)
    try:
        deadline = time.monotonic() + 30
        while True:  # its Envoy connects once, then the fault holds it out: DISCONNECTED
            code, data = _verify(mesh)
            if any(f["proxy"] == ref and f["check"] == "DISCONNECTED"
                   for f in data.get("findings", [])) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        sandbox.kubectl("delete", "pod", "short-lived", "-n", "istioinaction",
                        "--grace-period=0", "--wait=true")
        code, data = _verify(mesh)
        assert code == 7, data
        gone = [f for f in data["findings"] if f["check"] == "GONE"]
        assert [f["proxy"] for f in gone] == [ref], data["findings"]
        assert "lists it, but there is no such Running pod" in gone[0]["detail"]
        assert ref in [p["name"] for p in data["proxies"]]
    finally:
        sandbox.kubectl("delete", "pod", "short-lived", "-n", "istioinaction",
                        "--grace-period=0", "--ignore-not-found", check=False)
