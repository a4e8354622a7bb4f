"""`kubectl mesh routes --trace URL` and `--check` against the live gateway of the sandbox."""

from __future__ import annotations

import json

from sandbox.testing import SCENARIOS

GW = ("deploy/istio-ingressgateway", "-n", "istio-system")
URL = "http://catalog.istioinaction.io/items"
CATALOG = "catalog.istioinaction.svc.cluster.local"
KUBERNETES = "outbound|443||kubernetes.default.svc.cluster.local"


def _without_endpoints(mesh) -> list[str]:
    """The gateway's clusters outside the scenario that have no endpoint: the `kubernetes`
    Service's on real Istio here (the real backend's API server is on loopback and runs
    without an endpoint reconciler: sandbox/apiserver/kubernetesservice.py); none where the
    sandbox istiod stands in for the reconciler (`Mesh.api_server_endpoint`)."""
    out = mesh("endpoints", *GW, "--cluster", KUBERNETES, "-o", "json")
    assert out.returncode == 0, out.stderr
    return [] if json.loads(out.stdout) else [KUBERNETES]


def test_trace_and_check_before_and_after_the_destinationrule(mesh, sandbox):
    broken = mesh("routes", *GW, "--trace", URL)
    assert broken.returncode == 7, broken.stderr
    assert "BROKEN: Envoy answers 503 NC cluster_not_found" in broken.stdout
    assert f"no DestinationRule defines subset version-v1 for host {CATALOG}" in broken.stdout
    assert "IST0101" in broken.stdout and "VirtualService catalog-v1-v2.istioinaction" in broken.stdout
    assert "port 80 is the Service port; the proxy listens on 8080" in broken.stdout
    assert broken.stderr.strip().endswith(f"{URL} would fail: 503 NC cluster_not_found")

    unrelated = _without_endpoints(mesh)
    check = mesh("routes", *GW, "--check", "-o", "json")
    assert check.returncode == 7
    findings = json.loads(check.stdout)
    dangling = [f for f in findings if f["kind"] == "dangling_cluster"]
    assert [f["severity"] for f in dangling] == ["error", "error"]
    assert {f"outbound|80|{s}|{CATALOG}" for s in ("version-v1", "version-v2")} == {
        next(w.rstrip(",") for w in f["message"].split() if w.startswith("outbound|"))
        for f in dangling}
    # the errors come first; an unreferenced cluster without endpoints is a warning
    assert [(f["severity"], f["kind"], f["where"]) for f in findings[2:]] == [
        ("warning", "no_healthy_endpoints", name) for name in unrelated]

    sandbox.kubectl("apply", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"))
    try:
        ok = sandbox.wait_for(lambda: (r := mesh("routes", *GW, "--trace", URL, "-o", "json"))
                              .returncode == 0 and r, what="a routed trace")
        result = json.loads(ok.stdout)
        assert result["outcome"] == "routed" and result["port"] == 8080
        endpoints = {c["name"].split("|")[2]: sorted(e["address"] for e in c["endpoints"])
                     for c in result["clusters"]}
        pods = {v: sorted(f"{p['status']['podIP']}:3000" for p in sandbox.pods("istioinaction", f"version={v}"))
                for v in ("v1", "v2")}
        assert endpoints == {"version-v1": pods["v1"], "version-v2": pods["v2"]}
        assert {c["share"] for c in result["clusters"]} == {20, 80}
        clean = mesh("routes", *GW, "--check", "-o", "json")
        assert clean.returncode == (7 if unrelated else 0), clean.stdout
        assert [f["where"] for f in json.loads(clean.stdout)] == unrelated
    finally:
        sandbox.kubectl("delete", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"))


def test_trace_unknown_host_is_404_nr_with_the_closest_host(mesh):
    out = mesh("routes", *GW, "--trace", "http://catalog.istioinaction.com/items")
    assert out.returncode == 7
    assert "404 NR route_not_found" in out.stdout
    assert "closest: catalog.istioinaction.io" in out.stdout


def test_trace_usage_errors(mesh):
    both = mesh("routes", *GW, "--trace", URL, "--check")
    assert both.returncode == 2 and "not both" in both.stderr
    bad_header = mesh("routes", *GW, "--trace", URL, "--header", "nocolon")
    assert bad_header.returncode == 2 and "Traceback" not in bad_header.stderr


def test_a_sidecar_traces_the_called_services_port(mesh):
    """A sidecar's outbound request keeps the port of the Service it calls, even where the
    sidecar's own Service maps that port elsewhere (catalog's Service: 80 -> 3000)."""
    out = mesh("routes", "deploy/catalog", "-n", "istioinaction", "--trace",
               "http://catalog.istioinaction/items", "-o", "json")
    assert out.returncode in (0, 7), out.stderr
    result = json.loads(out.stdout)
    assert result["port"] == 80
    assert not [n for n in result["notes"] if "is the Service port" in n]
