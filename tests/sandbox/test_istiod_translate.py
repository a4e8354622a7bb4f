"""Pure tests of sandbox.istiod translation: objects → Istio-shaped Envoy resources."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format

from sandbox.istiod import resources, translate
from sandbox.istiod.bootstrap import render_bootstrap
from sandbox.istiod.clusters import CLUSTER_TYPE, INVALID_ANNOTATION, load_assignment
from sandbox.istiod.listeners import ACCESS_LOG_FORMAT, LISTENER_TYPE
from sandbox.istiod.mesh import Mesh, resolve_host
from sandbox.istiod.proxy import BadNodeId, Proxy
from sandbox.istiod.routes import ROUTE_TYPE, duration

SCENARIOS = Path(__file__).resolve().parents[2] / "sandbox" / "scenarios"
FQDN = "catalog.istioinaction.svc.cluster.local"
GW_NODE = "router~127.0.9.2~gw-1.istio-system~istio-system.svc.cluster.local"
CATALOG_NODE = "sidecar~127.0.9.3~catalog-1.istioinaction~istioinaction.svc.cluster.local"


def load(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((SCENARIOS / name).read_text()) if d]


def pod(name, ns, ip, labels, ports, ready=True):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "app", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


HTTP = [{"containerPort": 3000, "name": "http"}]
PODS = [
    pod("gw-1", "istio-system", "127.0.9.2",
        {"app": "istio-ingressgateway", "istio": "ingressgateway"},
        [{"containerPort": 8080, "name": "http2"}]),
    pod("catalog-1", "istioinaction", "127.0.9.3", {"app": "catalog", "version": "v1"}, HTTP),
    pod("catalog-v2-a", "istioinaction", "127.0.9.4", {"app": "catalog", "version": "v2"}, HTTP),
    pod("catalog-v2-b", "istioinaction", "127.0.9.5", {"app": "catalog", "version": "v2"}, HTTP,
        ready=False),
]


def mesh_of(*extra_files: str, extra: list[dict] = ()) -> Mesh:
    objects = load("default.yaml") + copy.deepcopy(PODS) + list(extra)
    for name in extra_files:
        objects += load(name)
    return Mesh.from_objects(objects)


def proxy(mesh: Mesh, node: str) -> Proxy:
    return Proxy.from_node_id(node).with_pod(mesh)


def names(type_url, items):
    return [translate.resource_name(type_url, r) for r in items]


def test_gateway_clusters_have_subsets_only_with_a_destination_rule():
    before = mesh_of()
    after = mesh_of("catalog-destinationrule.yaml")
    gw_before = names(CLUSTER_TYPE, translate.generate(before, proxy(before, GW_NODE), CLUSTER_TYPE))
    gw_after = translate.generate(after, proxy(after, GW_NODE), CLUSTER_TYPE)
    assert f"outbound|80||{FQDN}" in gw_before
    assert f"outbound|80|version-v1|{FQDN}" not in gw_before
    # gateways have no original-dst listeners, so no PassthroughCluster (cluster.go buildClusters)
    assert "BlackHoleCluster" in gw_before and "PassthroughCluster" not in gw_before
    assert not any(n.startswith("inbound|") for n in gw_before)
    by_name = {c["name"]: c for c in gw_after}
    v1 = by_name[f"outbound|80|version-v1|{FQDN}"]
    assert v1["metadata"]["filter_metadata"]["istio"]["config"] == \
        "/apis/networking.istio.io/v1/namespaces/istioinaction/destination-rule/catalog"
    assert v1["eds_cluster_config"]["service_name"] == v1["name"]
    # The DR applies to the plain cluster too; other services carry no DR reference.
    assert "config" in by_name[f"outbound|80||{FQDN}"]["metadata"]["filter_metadata"]["istio"]
    assert "config" not in by_name["outbound|15010||istiod.istio-system.svc.cluster.local"][
        "metadata"]["filter_metadata"]["istio"]


def test_every_cluster_binds_the_pod_ip_and_disables_panic_routing():
    mesh = mesh_of("catalog-destinationrule.yaml")
    for node, ip in ((GW_NODE, "127.0.9.2"), (CATALOG_NODE, "127.0.9.3")):
        for cluster in translate.generate(mesh, proxy(mesh, node), CLUSTER_TYPE):
            assert cluster["upstream_bind_config"]["source_address"]["address"] == ip
            assert cluster["common_lb_config"] == {"healthy_panic_threshold": {}}
            assert cluster["connect_timeout"] == "10s"


def test_sidecar_inbound_cluster_targets_the_pod_port():
    mesh = mesh_of()
    clusters = {c["name"]: c for c in translate.generate(mesh, proxy(mesh, CATALOG_NODE), CLUSTER_TYPE)}
    inbound = clusters["inbound|3000||"]
    assert inbound["type"] == "STATIC"
    address = inbound["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "127.0.9.3", "port_value": 3000}


def test_sidecar_passthrough_clusters_as_real_istiods():
    mesh = mesh_of()
    clusters = {c["name"]: c for c in translate.generate(mesh, proxy(mesh, CATALOG_NODE),
                                                         CLUSTER_TYPE)}
    for name in ("PassthroughCluster", "InboundPassthroughCluster"):
        assert (clusters[name]["type"], clusters[name]["lb_policy"]) == (
            "ORIGINAL_DST", "CLUSTER_PROVIDED")
        assert "load_assignment" not in clusters[name]
    assert clusters["BlackHoleCluster"]["type"] == "STATIC"


@pytest.mark.parametrize("node", [GW_NODE, CATALOG_NODE], ids=["router", "sidecar"])
def test_cluster_and_http_stat_names_end_in_istios_tag_marker(node):
    """`alt_stat_name` "<name>;" and HCM `stat_prefix` "<direction>_<listener>;", as istiod's
    util.DelimitedStatsPrefix makes them, for the bootstrap's stats_tags."""
    mesh = mesh_of("catalog-destinationrule.yaml")
    me = proxy(mesh, node)
    clusters = translate.generate(mesh, me, CLUSTER_TYPE)
    assert clusters and all(c["alt_stat_name"] == c["name"] + ";" for c in clusters)
    prefixes = [f["typed_config"]["stat_prefix"]
                for listener in translate.generate(mesh, me, LISTENER_TYPE)
                for chain in listener["filter_chains"] for f in chain["filters"]
                if f["name"] == "envoy.filters.network.http_connection_manager"]
    assert prefixes and all(p.endswith(";") and p.count(";") == 1 for p in prefixes), prefixes
    expected = "outbound_0.0.0.0_8080;" if node == GW_NODE else "outbound_0.0.0.0_80;"
    assert expected in prefixes


def test_subset_endpoints_follow_labels_and_readiness():
    mesh = mesh_of("catalog-destinationrule.yaml")
    v2 = load_assignment(mesh, f"outbound|80|version-v2|{FQDN}")
    hosts = {(e["endpoint"]["address"]["socket_address"]["address"],
              e["endpoint"]["address"]["socket_address"]["port_value"]): e["health_status"]
             for e in v2["endpoints"][0]["lb_endpoints"]}
    assert hosts == {("127.0.9.4", 3000): "HEALTHY", ("127.0.9.5", 3000): "UNHEALTHY"}
    everything = load_assignment(mesh, f"outbound|80||{FQDN}")
    assert len(everything["endpoints"][0]["lb_endpoints"]) == 3
    # A subset no DestinationRule defines has no assignment at all (its cluster doesn't exist).
    assert load_assignment(mesh_of(), f"outbound|80|version-v1|{FQDN}") is None


def test_named_target_port_resolves_from_container_ports():
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "named", "namespace": "istioinaction"},
               "spec": {"selector": {"app": "catalog"},
                        "ports": [{"name": "web", "port": 8000, "targetPort": "http"}]}}
    mesh = mesh_of(extra=[service])
    ports = {e["endpoint"]["address"]["socket_address"]["port_value"] for e in load_assignment(
        mesh, "outbound|8000||named.istioinaction.svc.cluster.local")["endpoints"][0]["lb_endpoints"]}
    assert ports == {3000}


def _gateway_routes(mesh):
    return translate.generate(mesh, proxy(mesh, GW_NODE), ROUTE_TYPE)


def test_gateway_route_points_at_subsets_even_without_destination_rule():
    [config] = _gateway_routes(mesh_of())
    assert config["name"] == "http.8080"
    assert config["validate_clusters"] is False
    [vhost] = config["virtual_hosts"]
    assert vhost["name"] == "catalog.istioinaction.io:80"
    assert vhost["domains"] == ["catalog.istioinaction.io", "catalog.istioinaction.io:*"]
    [route] = vhost["routes"]
    weighted = route["route"]["weighted_clusters"]["clusters"]
    assert weighted == [{"name": f"outbound|80|version-v1|{FQDN}", "weight": 20},
                        {"name": f"outbound|80|version-v2|{FQDN}", "weight": 80}]
    assert route["route"]["timeout"] == "0s"
    assert route["route"]["retry_policy"]["num_retries"] == 2
    assert "retriable-status-codes" in route["route"]["retry_policy"]["retry_on"]
    assert route["metadata"]["filter_metadata"]["istio"]["config"] == \
        "/apis/networking.istio.io/v1/namespaces/istioinaction/virtual-service/catalog-v1-v2"


def test_virtual_service_timeout_reaches_the_route():
    [config] = _gateway_routes(mesh_of("catalog-timeout.yaml"))
    route = config["virtual_hosts"][0]["routes"][0]["route"]
    assert route["timeout"] == "0.5s"
    assert resources.normalized(ROUTE_TYPE, config)["virtual_hosts"][0]["routes"][0]["route"][
        "timeout"] == "0.500s"


def test_two_virtual_services_for_one_gateway_host_duplicate_domains():
    second = copy.deepcopy(load("catalog-timeout.yaml")[0])
    second["metadata"]["name"] = "catalog-dup"
    [config] = _gateway_routes(mesh_of(extra=[second]))
    domains = [d for vh in config["virtual_hosts"] for d in vh["domains"]]
    assert domains.count("catalog.istioinaction.io") == 2
    assert len({vh["name"] for vh in config["virtual_hosts"]}) == 2  # only domains collide


def test_gateway_without_virtual_service_gets_blackhole_404():
    mesh = Mesh.from_objects([o for o in load("default.yaml") if o["kind"] != "VirtualService"]
                             + copy.deepcopy(PODS))
    [config] = _gateway_routes(mesh)
    [vhost] = config["virtual_hosts"]
    assert vhost["domains"] == ["*"]
    assert vhost["routes"][0]["direct_response"]["status"] == 404


def test_gateway_listener_binds_pod_ip_on_target_port_with_access_log():
    mesh = mesh_of()
    [listener] = translate.generate(mesh, proxy(mesh, GW_NODE), LISTENER_TYPE)
    assert listener["name"] == "0.0.0.0_8080"
    assert listener["address"]["socket_address"] == {"address": "127.0.9.2", "port_value": 8080}
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["rds"]["route_config_name"] == "http.8080"
    log = hcm["access_log"][0]["typed_config"]
    assert log["path"] == "/dev/stdout"
    assert log["log_format"]["text_format_source"]["inline_string"] == ACCESS_LOG_FORMAT
    assert ACCESS_LOG_FORMAT.startswith('[%START_TIME%] "%REQ(:METHOD)% ')
    assert ACCESS_LOG_FORMAT.endswith("%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n")


def test_sidecar_listeners_and_service_routes():
    mesh = mesh_of()
    me = proxy(mesh, CATALOG_NODE)
    listeners = {l["name"]: l for l in translate.generate(mesh, me, LISTENER_TYPE)}
    assert listeners["virtualOutbound"]["address"]["socket_address"] == {
        "address": "127.0.9.3", "port_value": 15001}
    assert listeners["virtualInbound"]["address"]["socket_address"]["port_value"] == 15006
    assert listeners["0.0.0.0_80"]["bind_to_port"] is False
    routes = {r["name"]: r for r in translate.generate(mesh, me, ROUTE_TYPE)}
    vhosts = {v["name"]: v for v in routes["80"]["virtual_hosts"]}
    catalog = vhosts[f"{FQDN}:80"]
    assert {"catalog", "catalog.istioinaction", FQDN, FQDN + "."} <= set(catalog["domains"])
    assert "catalog:80" not in catalog["domains"]  # Envoy sidecars ignore the port
    assert catalog["routes"][0]["route"]["cluster"] == f"outbound|80||{FQDN}"
    # Short names only resolve in the proxy's own namespace.
    gw = vhosts["istio-ingressgateway.istio-system.svc.cluster.local:80"]
    assert "istio-ingressgateway" not in gw["domains"]
    assert vhosts["allow_any"]["routes"][0]["route"]["cluster"] == "PassthroughCluster"


def test_invalid_annotation_makes_destination_rule_clusters_invalid():
    dr = load("catalog-destinationrule.yaml")[0]
    dr["metadata"]["annotations"] = {INVALID_ANNOTATION: "true"}
    mesh = mesh_of(extra=[dr])
    clusters = {c["name"]: c for c in translate.generate(mesh, proxy(mesh, GW_NODE), CLUSTER_TYPE)}
    ring = clusters[f"outbound|80|version-v1|{FQDN}"]["ring_hash_lb_config"]
    assert int(ring["minimum_ring_size"]) > int(ring["maximum_ring_size"])
    assert "ring_hash_lb_config" not in clusters["BlackHoleCluster"]


@pytest.mark.parametrize("node", [GW_NODE, CATALOG_NODE], ids=["router", "sidecar"])
def test_all_resources_are_valid_envoy_protos(node):
    mesh = mesh_of("catalog-destinationrule.yaml", "catalog-timeout.yaml")
    me = proxy(mesh, node)
    for type_url in translate.PUSH_ORDER:
        items = translate.generate(mesh, me, type_url)
        assert items, type_url
        for item in items:
            resources.to_any(type_url, item)  # raises on unknown fields or bad values


@pytest.mark.parametrize("value,expected", [
    ("0.5s", "0.5s"), ("1s", "1s"), ("100ms", "0.1s"), ("1m", "60s"), (None, "0s"), ("", "0s"),
], ids=["half-second", "second", "millis", "minute", "none", "empty"])
def test_duration(value, expected):
    assert duration(value) == expected


@pytest.mark.parametrize("host,ns,expected", [
    ("catalog", "istioinaction", FQDN),
    ("catalog.istioinaction", "x", FQDN),
    ("catalog.istioinaction.svc", "x", FQDN),
    (FQDN, "x", FQDN),
    ("catalog.istioinaction.io", "x", "catalog.istioinaction.io"),
], ids=["short", "dotted", "svc", "fqdn", "external"])
def test_resolve_host(host, ns, expected):
    assert resolve_host(host, ns) == expected


def test_proxy_identity_from_node_id():
    p = Proxy.from_node_id(GW_NODE, {"LABELS": {"a": "b"}, "ISTIO_VERSION": "1.28.0"})
    assert (p.type, p.ip, p.name, p.namespace, p.id) == (
        "router", "127.0.9.2", "gw-1", "istio-system", "gw-1.istio-system")
    assert p.labels == {"a": "b"} and p.istio_version == "1.28.0"
    with pytest.raises(BadNodeId):
        Proxy.from_node_id("envoy-1")


def test_bootstrap_is_a_valid_envoy_bootstrap():
    from envoy.config.bootstrap.v3 import bootstrap_pb2
    gw = copy.deepcopy(PODS[0])
    gw["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "istio-ingressgateway-7d9f"}]
    config = render_bootstrap(gw, "router", ("127.0.9.1", 15010))
    json_format.ParseDict(config, bootstrap_pb2.Bootstrap())
    assert config["node"]["id"] == GW_NODE
    meta = config["node"]["metadata"]
    assert meta["WORKLOAD_NAME"] == "istio-ingressgateway"
    assert meta["LABELS"]["istio"] == "ingressgateway"
    assert (meta["NAMESPACE"], meta["INSTANCE_IPS"], meta["CLUSTER_ID"]) == (
        "istio-system", "127.0.9.2", "Kubernetes")
    assert config["admin"]["address"]["socket_address"] == {"address": "127.0.9.2",
                                                            "port_value": 15000}
    xds = next(c for c in config["static_resources"]["clusters"] if c["name"] == "xds-grpc")
    assert xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"] == {"address": "127.0.9.1", "port_value": 15010}
    with pytest.raises(ValueError):
        render_bootstrap(gw, "waypoint", ("127.0.9.1", 15010))
