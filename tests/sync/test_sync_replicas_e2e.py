"""Two istiod replicas sharing the proxies (`python -m sandbox.generate --sidecars 4
--istiod-replicas 2`): every proxy is listed once, with the istiod that owns its stream."""

from __future__ import annotations

import json

import pytest
import yaml

from sandbox.generate import scenario
from sandbox.testing import RunningSandbox
from sandbox.testing import MeshCli as Mesh

# In the slow matrix (`make test-fast` leaves it out): a larger sandbox of its own (two istiod
# replicas, four sidecars).
pytestmark = [pytest.mark.timeout(180), pytest.mark.slow,
              pytest.mark.sandbox_istiod_only(
                  "the generated scenario's two istiod replicas are sandbox istiods; real "
                  "Istio's install runs one istiod Deployment, which is not this scenario's")]


# what --verify reads of each Envoy, added to Istio's stats matcher as a user would (the
# control_plane stats name the control plane an UNKNOWN proxy is connected to)
STATS_OPT_IN = ("proxyStatsMatcher: {inclusionPrefixes: [control_plane], "
                "inclusionSuffixes: [update_rejected, version_text]}")


def opted_in(objects: list[dict]) -> list[dict]:
    for obj in objects:
        if obj.get("kind") == "Deployment" and obj["metadata"].get("namespace") == "bench":
            meta = obj["spec"]["template"].setdefault("metadata", {})
            meta.setdefault("annotations", {})["proxy.istio.io/config"] = STATS_OPT_IN
    return objects


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, backend):
    root = tmp_path_factory.mktemp("sync-replicas")
    path = root / "mesh.yaml"
    path.write_text(yaml.safe_dump_all(opted_in(scenario(4, istiod_replicas=2)), sort_keys=False))
    with RunningSandbox(root / "state", scenarios=[path], backend=backend) as sb:
        m = Mesh(sb)
        out = m("sync", "--wait", "--timeout", "40s")
        assert out.returncode == 0, out.stderr
        yield m


def test_each_proxy_once_with_its_owning_istiod(mesh):
    istiods = sorted(p["metadata"]["name"] for p in mesh.sb.pods("istio-system", "app=istiod"))
    assert len(istiods) == 2
    out = mesh("sync", "-o", "json")
    assert out.returncode == 0, out.stderr
    proxies = json.loads(out.stdout)
    names = [p["name"] for p in proxies]
    assert len(names) == len(set(names)) == 5  # 4 sidecars + the gateway
    owners = {p["istiod"] for p in proxies}
    assert owners == set(istiods)  # round-robin: both replicas own some
    # the owner really has the stream: its config_dump for the proxy answers (--diff uses it)
    target = next(p["name"] for p in proxies if p["name"].startswith("svc-"))
    diff = mesh("sync", target, "--diff")
    assert diff.returncode == 0, diff.stderr
    owner = next(p["istiod"] for p in proxies if p["name"] == target)
    assert f"istiod {owner}" in diff.stderr


def test_namespace_filter_and_verify_across_replicas(mesh):
    out = mesh("sync", "-n", "bench", "--verify")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [l for l in out.stdout.splitlines()[1:] if l.strip()]
    assert len(rows) == 4 and all(r.split()[0].endswith(".bench") for r in rows)
    assert "no problems" in out.stderr


def test_verify_flags_proxies_connected_to_another_revision(mesh):
    """`--revision canary` selects one istiod; the proxies the other one serves are UNKNOWN,
    and --verify names the control plane their own Envoy is connected to: as on a real
    sidecar, Envoy's control_plane.identifier is empty (istiod names itself only on syncz
    answers), so it is named by the revision the pod was injected for."""
    sb = mesh.sb
    istiods = sorted(p["metadata"]["name"] for p in sb.pods("istio-system", "app=istiod"))
    canary, other = istiods
    sb.kubectl("label", "pod", canary, "-n", "istio-system", "istio.io/rev=canary",
               "--overwrite")
    try:
        owners = {p["name"]: p["istiod"]
                  for p in json.loads(mesh("sync", "-n", "bench", "-o", "json").stdout)}
        foreign = sorted(name for name, owner in owners.items() if owner == other)
        assert foreign, owners  # round-robin gave the other replica some bench proxies
        out = mesh("sync", "-n", "bench", "--revision", "canary", "--verify", "-o", "json")
        assert out.returncode == 7, out.stderr
        data = json.loads(out.stdout)
        assert sorted(p["name"] for p in data["proxies"]) == sorted(set(owners) - set(foreign))
        unknown = {f["proxy"]: f for f in data["findings"] if f["check"] == "UNKNOWN"}
        assert sorted(unknown) == foreign
        assert all("connected to control plane of revision default" in f["detail"]
                   for f in unknown.values()), unknown
        assert "--verify found" in out.stderr
    finally:
        sb.kubectl("label", "pod", canary, "-n", "istio-system", "istio.io/rev=default",
                   "--overwrite")
