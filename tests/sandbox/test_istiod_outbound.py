"""The sandbox istiod's sidecar outbound listeners and route configs in real istiod's shape
(pilot/pkg/networking/core/listener.go, httproute.go; docs/real-istio.md findings 21, 22)."""

from __future__ import annotations

import pytest

from sandbox.istiod import translate
from sandbox.istiod.listeners import LISTENER_TYPE
from sandbox.istiod.protocol import port_protocol
from sandbox.istiod.routes import ROUTE_TYPE

from tests.sandbox.test_istiod_translate import CATALOG_NODE, FQDN, mesh_of, proxy

ISTIOD = "istiod.istio-system.svc.cluster.local"
KUBERNETES = "kubernetes.default.svc.cluster.local"


def service(name, ns, cluster_ip, ports):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": cluster_ip, "ports": ports, "selector": {"app": name}}}


KUBERNETES_SVC = {"apiVersion": "v1", "kind": "Service",
                  "metadata": {"name": "kubernetes", "namespace": "default"},
                  "spec": {"clusterIP": "10.96.0.1",
                           "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}
SNIFFED = service("legacy", "istioinaction", "10.96.7.7", [{"name": "web", "port": 8000}])
REVIEWS = service("reviews", "default", "10.96.9.9", [{"name": "http", "port": 9080}])
REVIEWS_V3 = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
              "metadata": {"name": "reviews", "namespace": "default"},
              "spec": {"hosts": ["reviews"], "http": [
                  {"route": [{"destination": {"host": "reviews", "subset": "v3"}}]}]}}


def generate(type_url, extra=()):
    mesh = mesh_of(extra=list(extra))
    items = translate.generate(mesh, proxy(mesh, CATALOG_NODE), type_url)
    return {item["name"]: item for item in items}


def chains(listener):
    return listener["filter_chains"] + ([listener["default_filter_chain"]]
                                        if "default_filter_chain" in listener else [])


def filter_config(chain):
    (only,) = chain["filters"]
    return only["typed_config"]


@pytest.mark.parametrize("port, protocol", [
    ({"name": "http", "port": 80}, "HTTP"), ({"name": "http2-web", "port": 80}, "HTTP2"),
    ({"name": "grpc-xds", "port": 15010}, "GRPC"), ({"name": "grpc-web", "port": 81}, "GRPC-Web"),
    ({"name": "tls-xds", "port": 15012}, "TLS"), ({"name": "https", "port": 443}, "HTTPS"),
    ({"name": "web", "port": 8000}, "Unsupported"), ({"port": 8000}, "Unsupported"),
    ({"port": 3306}, "TCP"), ({"name": "web", "port": 80, "appProtocol": "http"}, "HTTP"),
    ({"name": "http", "port": 80, "appProtocol": "kubernetes.io/h2c"}, "HTTP2"),
    ({"name": "http", "port": 53, "protocol": "UDP"}, "UDP"),
])
def test_a_ports_protocol_comes_from_its_name_or_app_protocol(port, protocol):
    assert port_protocol(port) == protocol


def test_an_http_port_sniffs_plaintext_http_and_passes_other_tcp_through():
    listener = generate(LISTENER_TYPE)["0.0.0.0_80"]
    (http,) = listener["filter_chains"]
    assert http["filter_chain_match"] == {"transport_protocol": "raw_buffer",
                                          "application_protocols": ["http/1.1", "h2c"]}
    assert filter_config(http)["rds"]["route_config_name"] == "80"
    fallback = listener["default_filter_chain"]
    assert fallback["name"] == "PassthroughFilterChain"
    assert filter_config(fallback)["cluster"] == "PassthroughCluster"
    assert [f["name"] for f in listener["listener_filters"]] == [
        "envoy.filters.listener.http_inspector"]
    assert listener["bind_to_port"] is False


def test_a_tcp_port_listens_on_the_services_cluster_ip_with_a_tcp_proxy():
    listeners = generate(LISTENER_TYPE, [KUBERNETES_SVC])
    listener = listeners["10.96.0.1_443"]
    assert listener["address"]["socket_address"] == {"address": "10.96.0.1", "port_value": 443}
    (chain,) = chains(listener)
    assert filter_config(chain)["cluster"] == f"outbound|443||{KUBERNETES}"
    assert "listener_filters" not in listener
    assert "0.0.0.0_443" not in listeners
    routes = generate(ROUTE_TYPE, [KUBERNETES_SVC])
    assert not {"443", "15012"} & set(routes)
    assert set(routes) == {"80", "15010", "15014"}


def test_a_port_of_unknown_protocol_is_sniffed_on_the_cluster_ip():
    listener = generate(LISTENER_TYPE, [SNIFFED])["10.96.7.7_8000"]
    (http,) = listener["filter_chains"]
    assert http["filter_chain_match"]["application_protocols"] == ["http/1.1", "h2c"]
    host = "legacy.istioinaction.svc.cluster.local"
    assert filter_config(http)["rds"]["route_config_name"] == f"{host}:8000"
    assert filter_config(listener["default_filter_chain"])["cluster"] == f"outbound|8000||{host}"
    config = generate(ROUTE_TYPE, [SNIFFED])[f"{host}:8000"]
    (vhost,) = config["virtual_hosts"]  # the host's own, no allow_any
    assert (vhost["name"], vhost["domains"]) == (f"{host}:8000", ["*"])
    assert vhost["routes"][0]["route"]["cluster"] == f"outbound|8000||{host}"


def test_virtual_host_domains_are_real_istiods_for_the_proxys_namespace():
    routes = generate(ROUTE_TYPE, [service("catalog", "istioinaction", "10.96.1.2",
                                           [{"name": "http", "port": 80}])])
    vhosts = routes["80"]["virtual_hosts"]
    assert [vh["name"] for vh in vhosts] == [
        f"{FQDN}:80", "istio-ingressgateway.istio-system.svc.cluster.local:80", "allow_any"]
    assert vhosts[0]["domains"] == [FQDN, FQDN + ".", "catalog", "catalog.istioinaction.svc",
                                    "catalog.istioinaction", "10.96.1.2"]
    assert vhosts[1]["domains"] == [
        "istio-ingressgateway.istio-system.svc.cluster.local",
        "istio-ingressgateway.istio-system.svc.cluster.local.",
        "istio-ingressgateway.istio-system", "istio-ingressgateway.istio-system.svc"]


def test_route_config_80_takes_every_virtual_service():
    routes = generate(ROUTE_TYPE, [REVIEWS, REVIEWS_V3])
    by_name = {vh["name"]: vh for vh in routes["80"]["virtual_hosts"]}
    reviews = by_name["reviews.default.svc.cluster.local:80"]
    assert reviews["domains"] == ["reviews.default.svc.cluster.local"]
    assert reviews["routes"][0]["route"]["cluster"] == "outbound|80|v3|reviews.default.svc.cluster.local"
    (own, allow_any) = routes["9080"]["virtual_hosts"]
    assert own["name"] == "reviews.default.svc.cluster.local:9080"
    assert own["domains"][:3] == ["reviews.default.svc.cluster.local",
                                  "reviews.default.svc.cluster.local.", "reviews.default"]
    assert own["routes"][0]["route"]["cluster"] == "outbound|9080|v3|reviews.default.svc.cluster.local"
    assert allow_any["name"] == "allow_any"
    # Only on 80: the VirtualService's host has no Service on 15014.
    assert [vh["name"] for vh in routes["15014"]["virtual_hosts"]] == [f"{ISTIOD}:15014", "allow_any"]
