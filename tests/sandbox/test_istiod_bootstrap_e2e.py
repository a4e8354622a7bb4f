"""A sandbox sidecar's bootstrap resources and stat names as a real Istio proxy's
(docs/real-istio.md findings 21-23, 25, 26), through REAL kubectl against real Envoys:
the 15090/15021 listeners and their `backend` routes, the bootstrap's clusters, the
`;` tag marker in stat names and Prometheus' tags, and traffic stats created on first use."""

from __future__ import annotations

import json
import pathlib
import socket

import pytest

pytestmark = pytest.mark.timeout(240)
NS = "istioinaction"
CATALOG = ("deploy/catalog", "-n", NS)
FQDN = "catalog.istioinaction.svc.cluster.local"
SCENARIOS = pathlib.Path(__file__).resolve().parents[2] / "sandbox" / "scenarios"


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()[1:] if line.strip()]


def get(pod: dict, port: int, path: str, host: str = "pod") -> tuple[int, str]:
    """GET `path` on the pod IP's `port`, as the kubelet's probe or Prometheus would."""
    with socket.create_connection((pod["status"]["podIP"], port), timeout=5) as sock:
        sock.settimeout(10)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode(errors="replace")


def catalog_pod(sandbox) -> dict:
    return sandbox.pods(NS, "app=catalog,version=v1")[0]


def test_listeners_and_routes_show_the_bootstraps_prometheus_and_health(mesh):
    out = mesh("listeners", *CATALOG)
    assert out.returncode == 0, out.stderr
    by_port = {r[1]: r for r in rows(out.stdout)}
    assert " ".join(by_port["15090"][2:]) == "ALL Inline Route: /stats/prometheus*"
    assert " ".join(by_port["15021"][2:]) == "ALL Inline Route: /healthz/ready*"
    out = mesh("routes", *CATALOG)
    assert out.returncode == 0, out.stderr
    # the static route configs have no name: istioctl's rows start with the vhost `backend`
    backend = sorted(" ".join(r) for r in rows(out.stdout) if r[0] == "backend")
    assert backend == ["backend * /healthz/ready*", "backend * /stats/prometheus*"]


def test_clusters_add_the_bootstraps_and_inbound_passthrough(mesh):
    out = mesh("clusters", *CATALOG)
    assert out.returncode == 0, out.stderr
    table = {r[0]: r for r in rows(out.stdout)}
    for name in ("agent", "sds-grpc", "prometheus_stats", "xds-grpc", "BlackHoleCluster"):
        assert table[name][1:] == ["-", "-", "-", "STATIC"], table.get(name)
    for name in ("InboundPassthroughCluster", "PassthroughCluster"):
        assert table[name][1:] == ["-", "-", "-", "ORIGINAL_DST"], table.get(name)


def test_health_port_answers_readiness_and_prometheus_port_the_stats(sandbox):
    pod = catalog_pod(sandbox)
    assert get(pod, 15021, "/healthz/ready")[0] == 200
    status, body = get(pod, 15090, "/stats/prometheus")
    assert status == 200
    # the `cluster_name` stats tag cut at the `;` marker, as on a real proxy
    assert 'envoy_cluster_upstream_rq_total{cluster_name="xds-grpc"}' in body, body[:2000]
    assert "xds-grpc;" not in body


def test_stat_names_carry_istios_tag_marker(mesh):
    out = mesh("stats", *CATALOG, "--filter", r"^cluster\.xds-grpc.*upstream_rq_total$")
    assert out.returncode == 0, out.stderr
    assert [line.split(": ", 1)[0] for line in out.stdout.splitlines()] == [
        "cluster.xds-grpc;.upstream_rq_total"]


def test_traffic_stats_appear_on_a_clusters_first_request(mesh, sandbox):
    """Istio's `deferred_stat_options`: a cluster's traffic stats are created on its first
    request. The gateway, made to keep its `cluster.outbound` stats, has its catalog cluster's
    `update_rejected` from the start and `upstream_rq_total` once a request went there.
    (Changes the gateway: the module's last test.)"""
    opt_in = ("proxyStatsMatcher:\n  inclusionPrefixes: [control_plane, cluster.outbound]\n"
              "  inclusionSuffixes: [update_rejected, version_text]\n")
    patch = {"spec": {"template": {"metadata": {"annotations": {
        "proxy.istio.io/config": opt_in}}}}}
    sandbox.kubectl("patch", "deploy", "istio-ingressgateway", "-n", "istio-system",
                    "--type", "merge", "-p", json.dumps(patch))

    def opted_in_gateway():
        pods = sandbox.pods("istio-system", "app=istio-ingressgateway")
        if len(pods) != 1 or "cluster.outbound" not in pods[0]["metadata"].get(
                "annotations", {}).get("proxy.istio.io/config", ""):
            return None
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in pods[0]["status"].get("conditions") or [])
        return pods[0] if ready else None
    gw = sandbox.wait_for(opted_in_gateway, timeout=120, what="the opted-in gateway Ready")
    # the VirtualService routes to catalog's subsets: their DestinationRule makes the clusters
    sandbox.kubectl("apply", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"))
    assert mesh("sync", "--wait", "--timeout", "90s").returncode == 0
    subsets = [f"cluster.outbound|80|version-{v}|{FQDN};" for v in ("v1", "v2")]

    def stats() -> dict[str, str]:
        out = mesh("stats", f"pod/{gw['metadata']['name']}", "-n", "istio-system",
                   "--filter", r"^cluster\.outbound\|80\|version-v[12]\|catalog\..*"
                   r"(update_rejected|upstream_rq_total)$")
        assert out.returncode == 0, out.stderr
        return dict(line.split(": ", 1) for line in out.stdout.splitlines())
    rejected = {f"{c}.update_rejected": "0" for c in subsets}
    assert stats() == rejected
    status, body = get(gw, 8080, "/items", host="catalog.istioinaction.io")
    assert status == 200, body[:200]
    after = stats()
    [counter] = set(after) - set(rejected)
    assert (counter.rsplit(";", 1)[0] + ";" in subsets, after[counter]) == (True, "1"), after
