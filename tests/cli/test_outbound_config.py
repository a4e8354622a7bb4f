"""A sidecar's outbound listeners and route configs through `kubectl mesh listeners|routes`:
the shapes real istiod gives (listener.go `buildSidecarOutboundListener`, httproute.go
`BuildSidecarOutboundVirtualHosts`), the same on every backend (docs/real-istio.md 21, 22)."""

from __future__ import annotations

import json

import yaml

CATALOG = ("deploy/catalog", "-n", "istioinaction")
FQDN = "catalog.istioinaction.svc.cluster.local"
ISTIOD = "istiod.istio-system.svc.cluster.local"
# A VirtualService for a host with no Service on port 80 (istiod: 15010, 15012, 15014).
ISTIOD_VS = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "istiod-routes", "namespace": "istioinaction"},
             "spec": {"hosts": [ISTIOD], "http": [{"name": "to-istiod",
                                                   "route": [{"destination": {"host": ISTIOD}}]}]}}


def rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()[1:]]


def test_an_http_port_has_an_http_chain_and_a_passthrough_chain(mesh):
    out = mesh("listeners", *CATALOG, "--port", "80")
    assert out.returncode == 0, out.stderr
    assert rows(out.stdout) == [
        ["0.0.0.0", "80", "Trans:", "raw_buffer;", "App:", "http/1.1,h2c", "Route:", "80"],
        ["0.0.0.0", "80", "ALL", "PassthroughCluster"]]
    assert rows(mesh("listeners", *CATALOG, "--port", "80", "--summary").stdout) == [
        ["0.0.0.0", "80", "HTTP+TCP"]]


def test_a_tcp_service_port_is_a_listener_on_its_cluster_ip(mesh, sandbox):
    out = mesh("listeners", *CATALOG, "--address", "10.96.0.1")
    assert rows(out.stdout) == [
        ["10.96.0.1", "443", "ALL", "Cluster:", "outbound|443||kubernetes.default.svc.cluster.local"]]
    istiod_ip = sandbox.kubectl("get", "svc", "istiod", "-n", "istio-system", "-o",
                                "jsonpath={.spec.clusterIP}").stdout
    tls = rows(mesh("listeners", *CATALOG, "--port", "15012").stdout)
    assert tls == [[istiod_ip, "15012", "ALL", "Cluster:", f"outbound|15012||{ISTIOD}"]]
    names = {rc.get("name") for rc in json.loads(mesh("routes", *CATALOG, "-o", "json").stdout)}
    assert {"80", "15010", "15014"} <= names
    assert not names & {"443", "15012"}


def test_virtual_host_domains_start_with_the_fqdn_and_its_absolute_form(mesh, sandbox):
    ip = sandbox.kubectl("get", "svc", "catalog", "-n", "istioinaction", "-o",
                         "jsonpath={.spec.clusterIP}").stdout
    (config,) = json.loads(mesh("routes", *CATALOG, "--name", "80", "-o", "json").stdout)
    vhosts = {vh["name"]: vh for vh in config["virtual_hosts"]}
    assert vhosts[f"{FQDN}:80"]["domains"] == [
        FQDN, FQDN + ".", "catalog", "catalog.istioinaction.svc", "catalog.istioinaction", ip]
    assert config["virtual_hosts"][-1]["name"] == "allow_any"
    table = rows(mesh("routes", *CATALOG, "--name", "80").stdout)
    assert table[0] == ["80", f"{FQDN}:80", f"{FQDN}.,", "catalog", "+", "2", "more...", "/*"]


def test_route_config_80_takes_a_virtual_service_whose_host_is_on_other_ports(mesh, sandbox):
    def vhosts(name: str) -> dict:
        (config,) = json.loads(mesh("routes", *CATALOG, "--name", name, "-o", "json").stdout)
        return {vh["name"]: vh for vh in config["virtual_hosts"]}

    def clusters(vhost: dict) -> list[str]:
        return [r["route"]["cluster"] for r in vhost["routes"]]

    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump(ISTIOD_VS))
    try:
        on_80 = sandbox.wait_for(lambda: vhosts("80").get(f"{ISTIOD}:80"),
                                 what="the VirtualService in route config 80")
        assert on_80["domains"] == [ISTIOD]
        # No port in the destination: the listener's port, a cluster that does not exist.
        assert clusters(on_80) == [f"outbound|80||{ISTIOD}"]
        on_15014 = vhosts("15014")[f"{ISTIOD}:15014"]
        assert clusters(on_15014) == [f"outbound|15014||{ISTIOD}"]
        assert on_15014["routes"][0]["name"] == "to-istiod"
    finally:
        sandbox.kubectl("delete", "-f", "-", input=yaml.safe_dump(ISTIOD_VS))
    sandbox.wait_for(lambda: f"{ISTIOD}:80" not in vhosts("80"), what="the VirtualService gone")
