"""Real istiod's default config on upstream Envoy, run by the sandbox kubelet as an injected
pod's istio-proxy: Envoy rejects the listeners and clusters that carry Istio's own extensions
(istio.stats, istio.metadata_exchange, peer_metadata) and then cannot write its listeners as
JSON (docs/real-istio.md finding 11). The state a version-skewed proxy is in when a user
reaches for `kubectl mesh`: `sync --verify` must name the rejection as istioctl's
proxy-status does, and `listeners` must say why it has no table."""

from __future__ import annotations

import json

import pytest

from sandbox.real.istio.sidecar import kubelet_for
from sandbox.testing import wait_until
from tests.real.test_real_istio_commands import NS, Cluster, by_name, workload

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(istio_meshes, binaries):
    cp, istiod = istio_meshes()  # istiod's defaults: no settings for upstream Envoy
    with kubelet_for(cp, istiod, binaries=binaries, pod_network="loopback"):
        c = Cluster(cp, istiod, binaries)
        c.injected_namespace(NS)
        c.apply(workload("catalog", "docker.io/istioinaction/catalog:latest"))
        # the sidecar never turns Ready (its listeners are rejected): wait for Running
        wait_until(what="catalog's pod Running", predicate=lambda: c.kubectl(
            "get", "pods", "-n", NS, "-l", "app=catalog",
            "-o", "jsonpath={.items[*].status.phase}") == "Running", timeout=120)
        yield c


@pytest.fixture(scope="module")
def catalog(cluster) -> str:
    proxy = f"{cluster.pod('catalog')}.{NS}"
    wait_until(what="istioctl proxy-status: LDS ERROR", predicate=lambda: by_name(cluster.istioctl(
        "proxy-status", "-v", "1", *cluster.xds()).stdout).get(proxy, {}).get("LDS") == "ERROR",
        timeout=120)
    return proxy


def test_verify_names_the_rejection_envoy_cannot_print(cluster, catalog):
    out = cluster.mesh("sync", *cluster.xds(), "--verify", "-o", "json")
    assert out.returncode == 7, out.stderr  # findings, not a failed run
    found = {(f["proxy"], f.get("type")): f for f in json.loads(out.stdout)["findings"]}
    lds = found[(catalog, "LDS")]
    assert lds["check"] == "REJECTED" and lds["severity"] == "error"
    assert "Envoy cannot print the rejected listeners" in lds["detail"]
    assert "Failed to convert protobuf message to JSON string" in lds["detail"]
    assert found[(catalog, "CDS")]["check"] == "REJECTED"  # from istiod's lastError


def test_listeners_shows_the_static_listeners_and_says_why_not_the_others(cluster, catalog):
    """No listener dump holding the dynamic listeners prints (finding 11), not even one
    filtered by name; the bootstrap's static listeners do: the table holds them, a warning
    says what is left out and why."""
    pod, _, namespace = catalog.rpartition(".")
    for query in ("/config_dump?mask=dynamic_listeners",
                  "/config_dump?resource=dynamic_listeners&name_regex=%5Enosuch%24"):
        whole = cluster.mesh("admin", pod, "-n", namespace, query)
        assert "could not find @type 'type.googleapis.com/" in whole.stdout, query
    out = cluster.mesh("listeners", pod, "-n", namespace, "-o", "json")
    assert out.returncode == 0, out.stderr
    [warning] = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert f"warning: {catalog}: Envoy cannot print its dynamic listeners (Failed to convert " \
        "protobuf message to JSON string: INVALID_ARGUMENT: could not find @type" in warning
    assert "its 2 static listeners only" in warning and "sync --verify" in warning
    # the proxy's readiness and Prometheus listeners (the injected bootstrap's static ones)
    assert sorted(entry["name"] for entry in json.loads(out.stdout)) == [
        "0.0.0.0_15021", "0.0.0.0_15090"]
    table = cluster.mesh("listeners", pod, "-n", namespace)
    assert table.returncode == 0 and "15021" in table.stdout and "15090" in table.stdout
    # clusters still read: no active or warming cluster holds a rejected config
    assert cluster.mesh("clusters", pod, "-n", namespace).returncode == 0
