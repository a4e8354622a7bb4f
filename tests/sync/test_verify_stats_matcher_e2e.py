"""The sandbox's Envoys keep only the stats real Istio keeps (docs/real-istio.md finding 19):
Istio's bootstrap stats matcher plus what a pod's `proxy.istio.io/config` adds
(sandbox/istiod/bootstrap.py `stats_matcher`), through REAL kubectl against real Envoys. So
`sync --verify` says what it cannot check on the default scenario's catalog sidecars, as on
real Istio, while the gateway, whose pod template opts in, is checked in full."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.timeout(240)
NS = "istioinaction"
OPT_IN = ("proxyStatsMatcher:\n"
          "  inclusionPrefixes: [control_plane, cluster.outbound]\n"
          "  inclusionSuffixes: [update_rejected, version_text]\n")


def names(text: str) -> list[str]:
    """The stat names of `stats` output. Clusters' and HTTP connection managers' carry
    Istio's tag marker `;` (cluster `alt_stat_name`, HCM `stat_prefix`), on the sandbox's
    Envoys as on real ones: `cluster.xds-grpc;.upstream_rq_total` (docs/real-istio.md
    finding 25)."""
    return [line.split(": ", 1)[0] for line in text.splitlines() if line]


def catalog_proxies(sandbox) -> list[str]:
    return sorted(f"{p['metadata']['name']}.{NS}" for p in sandbox.pods(NS, "app=catalog"))


def test_a_sidecar_without_opt_in_keeps_no_upstream_rds_or_stream_stats(mesh):
    out = mesh("stats", "deploy/catalog", "-n", NS, "--filter",
               r"upstream_rq_total|\.rds\.|^control_plane\.|update_rejected")
    assert out.returncode == 0, out.stderr
    got = names(out.stdout)
    # only Istio's required prefixes are left: the xDS cluster's and the managers' own
    assert got and all(n.startswith(("cluster.xds-grpc;.", "cluster_manager.", "listener_manager."))
                       for n in got), got
    assert "cluster.xds-grpc;.upstream_rq_total" in got


def test_verify_says_what_the_default_matcher_leaves_unchecked(mesh, sandbox):
    out = mesh("sync", "--verify")
    assert out.returncode == 0, out.stdout + out.stderr
    catalogs = catalog_proxies(sandbox)
    [unchecked] = [line for line in out.stderr.splitlines() if "not checked" in line]
    assert unchecked.startswith(f"verify: not checked on {len(catalogs)} of {len(catalogs) + 1} "
                                "proxies ("), unchecked
    assert unchecked.split("): ", 1)[1].startswith("RDS, EDS, ADS stream – "), unchecked
    data = json.loads(mesh("sync", "--verify", "-o", "json").stdout)
    assert sorted(f["proxy"] for f in data["findings"] if f["check"] == "UNCHECKED") == catalogs


def start_workload(mesh, sandbox, name: str, annotations: dict[str, str]) -> str:
    """A catalog Deployment `name` with `annotations` on its pod template; its pod's name once
    it is Ready and every proxy SYNCED."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                              "spec": {"containers": [{
                                  "name": "catalog", "image": "istioinaction/catalog:latest",
                                  "ports": [{"containerPort": 3000, "name": "http"}]}]}}}}
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(deployment))
    sandbox.wait_for(lambda: sandbox.pods(NS, f"app={name}"), timeout=60, what=f"the {name} pod")
    sandbox.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod", "-l", f"app={name}",
                    "--timeout=120s", timeout=130)
    assert mesh("sync", "--wait", "--timeout", "90s").returncode == 0
    [pod] = [p["metadata"]["name"] for p in sandbox.pods(NS, f"app={name}")]
    return pod


def delete_workload(sandbox, name: str) -> None:
    sandbox.kubectl("delete", "deployment", name, "-n", NS, "--wait=false", check=False)
    sandbox.wait_for(lambda: not sandbox.pods(NS, f"app={name}"), timeout=90,
                     what=f"the {name} pod gone")


def test_the_proxy_config_annotation_opts_a_sidecar_in(mesh, sandbox):
    try:
        pod = start_workload(mesh, sandbox, "catalog-stats", {"proxy.istio.io/config": OPT_IN})
        # update_rejected, not a traffic counter: real Istio's bootstrap defers those until
        # the cluster's first request (deferred_stat_options, finding 26)
        out = mesh("stats", f"pod/{pod}", "-n", NS, "--filter",
                   r"update_rejected|\.rds\..*version_text|^control_plane\.connected_state")
        assert out.returncode == 0, out.stderr
        got = names(out.stdout)
        assert f"cluster.outbound|80||catalog.{NS}.svc.cluster.local;.update_rejected" in got
        assert any(n.startswith("http.") and ".rds." in n for n in got), got
        assert "control_plane.connected_state" in got
        verify = mesh("sync", f"pod/{pod}", "-n", NS, "--verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "verify: checked 1 proxies against their own Envoy: no problems" in verify.stderr
        assert "not checked" not in verify.stderr, verify.stderr
    finally:
        delete_workload(sandbox, "catalog-stats")


@pytest.mark.double_only("the real backend's mesh config belongs to its Istio installation")
def test_the_mesh_configs_proxy_stats_matcher_applies_to_proxies_started_after_it(mesh, sandbox):
    """The `istio` ConfigMap's defaultConfig.proxyStatsMatcher (the injector's PROXY_CONFIG);
    a sidecar's own statsInclusionPrefixes annotation replaces its prefixes."""
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "istio", "namespace": "istio-system"},
                 "data": {"mesh": "defaultConfig:\n  proxyStatsMatcher:\n"
                                  "    inclusionPrefixes: [control_plane]\n"}}
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(configmap))
    try:
        plain = start_workload(mesh, sandbox, "catalog-mesh", {})
        own = start_workload(mesh, sandbox, "catalog-own", {
            "sidecar.istio.io/statsInclusionPrefixes": "cluster.outbound"})
        # update_rejected: traffic counters wait for the cluster's first request (deferred)
        query = r"^control_plane\.connected_state$|^cluster\.outbound.*update_rejected$"
        assert names(mesh("stats", f"pod/{plain}", "-n", NS, "--filter", query).stdout) == [
            "control_plane.connected_state"]
        got = names(mesh("stats", f"pod/{own}", "-n", NS, "--filter", query).stdout)
        assert "control_plane.connected_state" not in got and \
            f"cluster.outbound|80||catalog.{NS}.svc.cluster.local;.update_rejected" in got, got
    finally:
        sandbox.kubectl("delete", "configmap", "istio", "-n", "istio-system", check=False)
        delete_workload(sandbox, "catalog-mesh")
        delete_workload(sandbox, "catalog-own")
