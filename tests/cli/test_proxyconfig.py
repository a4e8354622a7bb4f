"""`kubectl mesh routes|clusters|listeners|endpoints|secrets` end to end: real kubectl, the
sandbox's default scenario, real Envoys behind a port-forward."""

from __future__ import annotations

import io
import json

import pytest

from kubectl_mesh.proxyconfig import command as proxyconfig
from kubectl_mesh.configdump import ConfigDump
from sandbox.testing import SCENARIOS

GW = ("deploy/istio-ingressgateway", "-n", "istio-system")
CATALOG = "catalog.istioinaction.svc.cluster.local"


def rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()[1:]]


def test_routes_of_the_gateway_show_the_virtualservice(mesh):
    out = mesh("routes", *GW)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == ["NAME", "VHOST", "NAME", "DOMAINS", "MATCH",
                                                  "VIRTUAL", "SERVICE"]
    # then the bootstrap's static route configs (no name) of its 15021 and 15090 listeners
    # (tools/packaging/common/envoy_bootstrap.json), on the sandbox as on real Istio, in
    # Envoy's dump order, which varies between runs for the unnamed static ones
    table = rows(out.stdout)
    assert table[0] == ["http.8080", "catalog.istioinaction.io:80", "catalog.istioinaction.io",
                        "/*", "catalog-v1-v2.istioinaction"]
    assert sorted(table[1:]) == [["backend", "*", "/healthz/ready*"],
                                 ["backend", "*", "/stats/prometheus*"]]


def test_routes_json_prints_envoy_objects_and_name_filter(mesh):
    data = json.loads(mesh("routes", *GW, "-o", "json").stdout)
    assert [rc.get("name") for rc in data] == ["http.8080", None, None]
    assert [vh["name"] for rc in data[1:] for vh in rc["virtual_hosts"]] == ["backend"] * 2
    weights = data[0]["virtual_hosts"][0]["routes"][0]["route"]["weighted_clusters"]["clusters"]
    assert {c["name"]: c["weight"] for c in weights} == {
        f"outbound|80|version-v1|{CATALOG}": 20, f"outbound|80|version-v2|{CATALOG}": 80}
    assert rows(mesh("routes", *GW, "--name", "http.9999").stdout) == []


def test_clusters_show_subsets_only_after_the_destinationrule(mesh, sandbox):
    before = rows(mesh("clusters", *GW, "--fqdn", CATALOG, "--port", "80").stdout)
    assert before == [[CATALOG, "80", "-", "outbound", "EDS"]]
    sandbox.kubectl("apply", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"))
    try:
        after = sandbox.wait_for(lambda: (r := rows(mesh("clusters", *GW, "--fqdn", CATALOG,
                                                         "--port", "80").stdout)) and len(r) == 3 and r,
                                 what="subset clusters")
        assert after == [[CATALOG, "80", subset, "outbound", "EDS", "catalog.istioinaction"]
                         for subset in ("-", "version-v1", "version-v2")]
        v2 = rows(mesh("endpoints", *GW, "--cluster", f"outbound|80|version-v2|{CATALOG}").stdout)
        ips = sorted(p["status"]["podIP"] for p in sandbox.pods("istioinaction", "version=v2"))
        assert sorted(r[0] for r in v2) == [f"{ip}:3000" for ip in ips]
        assert {r[1] for r in v2} == {"HEALTHY"}
        assert rows(mesh("clusters", *GW, "--subset", "version-v1", "--direction", "inbound").stdout) == []
    finally:
        sandbox.kubectl("delete", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"))


@pytest.mark.sandbox_istiod_only(
    "the `kubernetes` Service's endpoint: the real backend's API server is on loopback and runs "
    "with --endpoint-reconciler-type=none, so real istiod has no endpoint for it; the sandbox "
    "istiod stands in for a cluster's endpoint reconciler (Mesh.api_server_endpoint)")
def test_the_api_servers_service_has_the_api_server_as_its_endpoint(mesh, sandbox):
    """`default/kubernetes`, created by the API server with no selector and (on loopback) no
    Endpoints: its cluster's one endpoint is the address kubectl reaches the API server on."""
    server = sandbox.kubectl("config", "view", "--minify", "-o",
                             "jsonpath={.clusters[0].cluster.server}").stdout
    api = server.removeprefix("https://")
    svc = json.loads(sandbox.kubectl("get", "svc", "kubernetes", "-n", "default",
                                     "-o", "json").stdout)
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP",
                                     "targetPort": int(api.rsplit(":", 1)[1])}]
    assert (svc["spec"]["clusterIP"], svc["metadata"]["labels"]) == (
        "10.96.0.1", {"component": "apiserver", "provider": "kubernetes"})
    assert "selector" not in svc["spec"]
    listed = sandbox.kubectl("get", "endpoints", "-n", "default", "-o", "name").stdout
    assert "kubernetes" not in listed
    cluster = "outbound|443||kubernetes.default.svc.cluster.local"
    assert rows(mesh("clusters", *GW, "--fqdn", "kubernetes.default.svc.cluster.local").stdout) == [
        ["kubernetes.default.svc.cluster.local", "443", "-", "outbound", "EDS"]]
    assert rows(mesh("endpoints", *GW, "--cluster", cluster).stdout) == [
        [api, "HEALTHY", "OK", cluster]]


def test_listeners_of_gateway_and_sidecar(mesh):
    gw = mesh("listeners", *GW)
    assert gw.returncode == 0, gw.stderr
    # the route listener, then the bootstrap's health and Prometheus listeners
    assert [(port, match, " ".join(dest)) for _, port, match, *dest in rows(gw.stdout)] == [
        ("8080", "ALL", "Route: http.8080"), ("15021", "ALL", "Inline Route: /healthz/ready*"),
        ("15090", "ALL", "Inline Route: /stats/prometheus*")]
    summary = rows(mesh("listeners", "deploy/catalog", "-n", "istioinaction", "--summary",
                        "--type", "http+tcp", "--port", "80").stdout)
    assert summary == [["0.0.0.0", "80", "HTTP+TCP"]]  # HTTP chain + PassthroughCluster
    bad = mesh("listeners", *GW, "--type", "udp")
    assert bad.returncode == 2 and "choose HTTP, TCP or HTTP+TCP" in bad.stderr


def test_a_workload_uses_one_pod_and_says_which(mesh, sandbox):
    out = mesh("endpoints", "deploy/catalog-v2", "-n", "istioinaction")
    names = sorted(p["metadata"]["name"] for p in sandbox.pods("istioinaction", "version=v2"))
    assert out.returncode == 0
    assert f"using pod {names[0]}.istioinaction (2 pods match deploy/catalog-v2" in out.stderr


def test_all_pods_agree_when_in_sync(mesh):
    for resource in ("routes", "clusters", "endpoints", "listeners"):
        out = mesh(resource, "deploy/catalog-v2", "-n", "istioinaction", "--all-pods")
        assert out.returncode == 0, (resource, out.stderr)
        assert f"all 2 pods have the same {resource}" in out.stderr


def test_target_forms_and_errors(mesh, sandbox):
    pod = sandbox.pods("istioinaction", "version=v1")[0]["metadata"]["name"]
    for target in (pod, f"pod/{pod}", f"{pod}.istioinaction", "svc/catalog", "deployment/catalog"):
        out = mesh("clusters", target, "-n", "istioinaction", "--port", "3000")
        assert out.returncode == 0, (target, out.stderr)
    missing = mesh("routes", "deploy/catlog", "-n", "istioinaction")
    assert missing.returncode == 3
    assert missing.stderr.strip().startswith('error: deployment "catlog" not found in namespace istioinaction')
    assert "catalog" in missing.stderr and "Traceback" not in missing.stderr
    no_sidecar = mesh("routes", "deploy/istiod", "-n", "istio-system")
    assert no_sidecar.returncode == 3 and "has no istio-proxy container" in no_sidecar.stderr
    both = mesh("routes", "deploy/catalog", "-f", "x.json")
    assert both.returncode == 2 and "not both" in both.stderr


def test_file_input_and_bad_files(mesh, tmp_path):
    dump = mesh("routes", *GW, "-o", "json")
    full = tmp_path / "routes.json"
    full.write_text(json.dumps({"configs": [{
        "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
        "dynamic_route_configs": [{"route_config": rc} for rc in json.loads(dump.stdout)]}]}))
    from_file = mesh("routes", "--file", str(full))
    assert from_file.returncode == 0 and "catalog-v1-v2.istioinaction" in from_file.stdout
    stdin = mesh("routes", "-f", "-", input=full.read_text())
    assert stdin.stdout == from_file.stdout
    for content, expected in (("not json", "not an Envoy config dump"),
                              (full.read_text()[:100], "truncated?"),
                              ('{"configs": []}', "")):
        bad = tmp_path / "bad.json"
        bad.write_text(content)
        out = mesh("clusters", "--file", str(bad))
        assert out.returncode == 6, (content, out.stdout, out.stderr)
        assert out.stderr.count("\n") == 1 and expected in out.stderr
    gone = mesh("routes", "--file", str(tmp_path / "nope.json"))
    assert gone.returncode == 3


def test_drift_between_replicas_is_reported(monkeypatch):
    """--all-pods: a replica whose routes differ (after a partial push) is named, exit 7."""
    def dump(clusters):
        return ConfigDump({"configs": [{
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "dynamic_active_clusters": [{"cluster": {"name": n, "type": "EDS"}} for n in clusters]}]},
            "x")
    base = [f"outbound|80||{CATALOG}", "inbound|3000||"]
    dumps = [("a.ns", "127.9.0.1", dump(base)), ("b.ns", "127.9.0.2", dump(base)),
             ("c.ns", "127.9.0.3", dump(base + [f"outbound|80|version-v1|{CATALOG}"]))]
    monkeypatch.setattr(proxyconfig, "fetch_dumps", lambda *a: dumps)
    from kubectl_mesh.cli import clusters
    out, err = io.StringIO(), io.StringIO()
    code = clusters.main(["deploy/catalog", "--all-pods"], stdout=out, stderr=err)
    assert code == 7
    assert "1 of 3 pods have different clusters than a.ns: c.ns" in err.getvalue()
    assert "+catalog.istioinaction.svc.cluster.local  80  version-v1" in err.getvalue()


@pytest.mark.sandbox_istiod_only("a proxy without certificates: the sandbox istiod's have "
                                  "none, real istiod's CA gives every proxy its workload "
                                  "certificate (`secrets` on real Istio: tests/real)")
def test_secrets_of_a_proxy_without_certificates_says_so(mesh):
    """The sandbox's istiod issues no workload certificates (no SDS): istioctl's words instead
    of a bare header, and no secrets in the JSON."""
    out = mesh("secrets", *GW)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == "No active or warming secrets found.\n"
    data = mesh("secrets", *GW, "-o", "json")
    assert data.returncode == 0, data.stderr
    assert json.loads(data.stdout) == []
