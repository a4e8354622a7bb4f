"""describe units: ingress exposure, and the live check of what the proxies carry (config
dumps shaped as istiod builds them, with `istio.config` metadata on routes and clusters)."""

from __future__ import annotations

from kubectl_mesh.configdump.clusters import parse_clusters
from kubectl_mesh.configdump.routes import parse_route_configs
from kubectl_mesh.describe.live import ProxyConfig
from tests.describe.objects import describe, pod
from tests.describe.test_traffic import BASE, DR, SPLIT, section

GATEWAY = """\
---
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Service
metadata: {name: istio-ingressgateway, namespace: istio-system}
spec:
  type: LoadBalancer
  selector: {istio: ingressgateway}
  ports:
  - {name: http2, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
  - {name: http, port: 8081, targetPort: 8081}
status: {loadBalancer: {ingress: [{ip: 203.0.113.7}]}}
---
""" + pod("istio-ingressgateway-1", {"istio": "ingressgateway"}, namespace="istio-system",
          sidecar=False, ports=(("istio-proxy", 8080, "http2"),)) + """\
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: catalog-gateway, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [catalog.example.com]
"""
EXPOSED = SPLIT.replace("  hosts: [catalog]", "  hosts: [catalog.example.com]\n"
                                              "  gateways: [catalog-gateway]")


def test_exposed_on_the_ingress_gateway_with_url_host_and_routes():
    _, text = describe(BASE + GATEWAY + EXPOSED + DR, "catalog-v1", namespace="shop")
    lines = text.splitlines()
    start = lines.index("Exposed on Ingress Gateway http://203.0.113.7")
    assert lines[start - 1] == "--------------------"
    assert lines[start:start + 5] == [
        "Exposed on Ingress Gateway http://203.0.113.7",
        "Exposed on Ingress Gateway http://203.0.113.7:8081",  # http/http2 ports only
        "   Gateway: shop/catalog-gateway, hosts catalog.example.com",
        '   curl -H "Host: catalog.example.com" http://203.0.113.7/',
        '   curl -H "Host: catalog.example.com" http://203.0.113.7:8081/']
    assert section(text, "VirtualService: catalog-v1-v2")[1:] == [
        '   Route to host "catalog.shop.svc.cluster.local" subset "version-v1" with weight 20%',
        '   Route to host "catalog.shop.svc.cluster.local" subset "version-v2" with weight 80%',
        "      Route to non-matching subset version-v2 for (everything)"]
    assert "Skipping Gateway information" not in text


def test_without_a_load_balancer_address_the_gateway_pods_host_ip():
    no_lb = GATEWAY.replace("status: {loadBalancer: {ingress: [{ip: 203.0.113.7}]}}\n", "")
    _, text = describe(BASE + no_lb + EXPOSED + DR, "catalog-v1", namespace="shop")
    assert "Exposed on Ingress Gateway http://10.0.0.9\n" in text


def test_a_virtual_service_naming_a_gateway_that_does_not_exist():
    vs = EXPOSED.replace("gateways: [catalog-gateway]", "gateways: [istio-system/nope]")
    report, text = describe(BASE + GATEWAY + vs + DR, "catalog-v1", namespace="shop")
    assert ("WARNING: VirtualService catalog-v1-v2 references non-existent gateway "
            "istio-system/nope") in text
    assert "Exposed on Ingress Gateway" not in text and "   Gateway:" not in text
    assert report["ingress"]["exposures"][0]["urls"] == []


def test_no_ingress_gateway_pods_is_istioctls_skipping_line():
    no_pod = GATEWAY.replace(GATEWAY[GATEWAY.index("apiVersion: v1\nkind: Pod"):
                                     GATEWAY.index("---\napiVersion: networking.istio.io")], "")
    _, text = describe(BASE + no_pod + EXPOSED + DR, "catalog-v1", namespace="shop")
    assert text[text.index("Skipping"):].splitlines()[:4] == [
        "Skipping Gateway information (no ingress gateway pods)",
        "--------------------",
        "WARNING: no Running pod matches the selector of Gateway shop/catalog-gateway",
        "   Gateway: shop/catalog-gateway, hosts catalog.example.com"]
    assert "Exposed on" not in text


# -- what the proxies carry -------------------------------------------------------------------

FQDN = "catalog.shop.svc.cluster.local"


def _meta(kind: str, name: str, namespace: str = "shop") -> dict:
    return {"filter_metadata": {"istio": {
        "config": f"/apis/networking.istio.io/v1/namespaces/{namespace}/{kind}/{name}"}}}


def proxy(ref: str, *, dr: str | None = "catalog", vs: str | None = None,
          subsets: tuple = ("version-v1", "version-v2"), route_subsets: tuple = ()) -> ProxyConfig:
    """A proxy whose outbound|80||catalog cluster carries DestinationRule `dr` (None: the
    cluster has no metadata), with subset clusters `subsets`, and a route from VirtualService
    `vs` (None: a route without metadata) to `route_subsets`."""
    cluster = {"name": f"outbound|80||{FQDN}", "type": "EDS"}
    if dr is not None:
        cluster["metadata"] = _meta("destination-rule", dr)
    clusters = [cluster] + [{"name": f"outbound|80|{s}|{FQDN}", "type": "EDS"} for s in subsets]
    targets = route_subsets or ("",)
    action = {"weighted_clusters": {"clusters": [
        {"name": f"outbound|80|{s}|{FQDN}", "weight": 50} for s in targets]}}
    route = {"name": "default", "match": {"prefix": "/"}, "route": action}
    if vs is not None:
        route["metadata"] = _meta("virtual-service", vs)
    routes = {"dynamic_route_configs": [{"route_config": {"name": "80", "virtual_hosts": [
        {"name": f"{FQDN}:80", "domains": [f"{FQDN}:80", "catalog"], "routes": [route]}]}}]}
    return ProxyConfig(ref, routes=parse_route_configs(routes),
                       clusters=parse_clusters({"dynamic_active_clusters": [
                           {"cluster": c} for c in clusters]}))


MESH_VS = SPLIT  # hosts [catalog], no gateways: the sidecars'


def test_a_proxy_that_carries_everything_gets_no_warning():
    proxies = {"catalog-v1.shop": proxy("catalog-v1.shop", vs="catalog-v1-v2",
                                        route_subsets=("version-v1", "version-v2"))}
    _, text = describe(BASE + MESH_VS + DR, "catalog-v1", namespace="shop", proxies=proxies)
    assert "WARNING: proxy" not in text and "stale" not in text


def test_a_destination_rule_and_virtual_service_the_proxy_does_not_carry():
    proxies = {"catalog-v1.shop": proxy("catalog-v1.shop", dr=None, vs=None)}
    _, text = describe(BASE + MESH_VS + DR, "catalog-v1", namespace="shop", proxies=proxies)
    assert section(text, 'DestinationRule: catalog for "catalog"')[-1] == (
        "   WARNING: proxy catalog-v1.shop does not carry DestinationRule catalog: its cluster "
        f"outbound|80||{FQDN} has none (not pushed yet, or rejected: kubectl mesh sync "
        "catalog-v1.shop)")
    assert section(text, "VirtualService: catalog-v1-v2")[-1] == (
        "   WARNING: proxy catalog-v1.shop does not carry VirtualService catalog-v1-v2 (not "
        "pushed yet, or rejected: kubectl mesh sync catalog-v1.shop)")


def test_routes_to_clusters_the_proxy_lacks_are_503_nc():
    proxies = {"catalog-v1.shop": proxy("catalog-v1.shop", dr=None, vs="catalog-v1-v2",
                                        subsets=(), route_subsets=("version-v1", "version-v2"))}
    _, text = describe(BASE + MESH_VS, "catalog-v1", namespace="shop", proxies=proxies)
    assert section(text, "VirtualService: catalog-v1-v2")[-2:] == [
        f"   WARNING: proxy catalog-v1.shop routes to cluster outbound|80|version-v1|{FQDN}, "
        "which it does not have (503 NC)",
        f"   WARNING: proxy catalog-v1.shop routes to cluster outbound|80|version-v2|{FQDN}, "
        "which it does not have (503 NC)"]
    assert "does not carry DestinationRule" not in text  # none applies: none expected


def test_a_stale_proxy_references_objects_that_are_gone():
    proxies = {"catalog-v1.shop": proxy("catalog-v1.shop", dr="old-dr", vs="old-vs")}
    _, text = describe(BASE, "catalog-v1", namespace="shop", proxies=proxies)
    assert ("WARNING: Proxy is stale; it references to non-existent destination rule "
            "old-dr.shop") in text
    assert ("WARNING: Proxy is stale; it references to non-existent virtual service "
            "old-vs.shop") in text


def test_another_destination_rule_in_the_proxy():
    other = DR.replace("name: catalog,", "name: older,")
    proxies = {"catalog-v1.shop": proxy("catalog-v1.shop", dr="older", vs=None)}
    _, text = describe(BASE + DR + other.replace("2026-01-01", "2026-02-01"), "catalog-v1",
                       namespace="shop", proxies=proxies)
    assert (f"   WARNING: proxy catalog-v1.shop applies DestinationRule older.shop to "
            f"outbound|80||{FQDN}, not catalog (not pushed yet, or rejected: kubectl mesh sync "
            "catalog-v1.shop)") in text


def test_the_gateways_proxy_is_checked_for_the_exposed_virtual_service():
    gw = "istio-ingressgateway-1.istio-system"
    proxies = {gw: proxy(gw, dr="catalog", vs=None)}
    _, text = describe(BASE + GATEWAY + EXPOSED + DR, "catalog-v1", namespace="shop",
                       proxies=proxies)
    assert section(text, "VirtualService: catalog-v1-v2")[-1] == (
        f"   WARNING: proxy {gw} does not carry VirtualService catalog-v1-v2 (not pushed yet, or "
        f"rejected: kubectl mesh sync {gw})")


def test_json_says_which_proxies_were_checked():
    proxies = {"catalog-v1.shop": ProxyConfig("catalog-v1.shop", error="connection refused")}
    report, text = describe(BASE + MESH_VS + DR, "catalog-v1", namespace="shop",
                            proxies=proxies)
    assert report["pod"]["proxy"] == {"checked": False, "ref": "catalog-v1.shop",
                                      "error": "connection refused"}
    assert "WARNING: proxy" not in text  # unreadable: nothing claimed about it
    report, _ = describe(BASE + MESH_VS + DR, "catalog-v1", namespace="shop")
    assert report["pod"]["proxy"] == {"checked": False}


def test_a_destination_rule_exported_to_its_namespace_only_is_not_the_gateways():
    local = DR + "  exportTo: ['.']\n"
    report, text = describe(BASE + GATEWAY + EXPOSED + local, "catalog-v1", namespace="shop")
    assert report["services"][0]["destinationRule"]["name"] == "catalog"  # the pod's namespace
    # the gateway runs in istio-system: the subsets are unknown there
    assert section(text, "VirtualService: catalog-v1-v2")[1:5] == [
        '   Route to host "catalog.shop.svc.cluster.local" subset "version-v1" with weight 20%',
        "      Warning: Route to subset version-v1 but NO DESTINATION RULE defining subsets!",
        '   Route to host "catalog.shop.svc.cluster.local" subset "version-v2" with weight 80%',
        "      Warning: Route to subset version-v2 but NO DESTINATION RULE defining subsets!"]


def test_secrets_are_not_read_so_no_credential_name_is_reported_missing():
    tls = GATEWAY + """\
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [catalog.example.com]
    tls: {mode: SIMPLE, credentialName: catalog-cert}
"""
    _, text = describe(BASE + tls + EXPOSED + DR, "catalog-v1", namespace="shop")
    assert "catalog-cert" not in text  # gateway.SecretAnalyzer does not run without Secrets
