"""The walk and its verdicts, on hand-built scenario dumps and on real Istio dumps."""

from __future__ import annotations

import json
from pathlib import Path


from kubectl_mesh.configdump import read_dump
from kubectl_mesh.trace import parse_request, trace_request
from kubectl_mesh.trace import verdict as v

from .builders import (
    CATALOG, PLAIN, V1, V2, catalog_vhost, cluster, dump, endpoints, gateway, http_chain,
    listener, route, vhost,
)

DUMPS = Path("/work/shared/istio-dumps")
URL = "http://catalog.istioinaction.io/items"
PORTS = {80: 8080}  # the ingress gateway Service: port 80 → targetPort 8080


def test_missing_subsets_give_503_nc_with_ist0101_fix():
    r = trace_request(gateway(), parse_request(URL), port_map=PORTS)
    assert r.outcome == v.NO_CLUSTER and not r.ok
    assert [(a.status, a.flag, a.details, a.share) for a in r.answers] == [
        (503, "NC", "cluster_not_found", 100.0)]
    assert [h.stage for h in r.hops] == ["listener", "filter chain", "route config",
                                         "virtual host", "route", "cluster", "cluster"]
    assert r.hops[0].name == "0.0.0.0_8080" and r.hops[2].name == "http.8080"
    assert r.hops[3].name == "catalog.istioinaction.io:80"
    assert [(c.name, c.share, c.exists) for c in r.clusters] == [(V1, 20.0, False), (V2, 80.0, False)]
    assert r.responsible == "VirtualService catalog-v1-v2.istioinaction"
    assert any("no DestinationRule defines subset version-v1 for host "
               f"{CATALOG}" in f and "IST0101" in f for f in r.fixes)
    assert r.to_dict()["outcome"] == "no_cluster"
    json.dumps(r.to_dict())  # serialisable for -o json


def test_subsets_present_with_endpoints_route_and_list_health():
    d = gateway(clusters=[cluster(V1), cluster(V2)])
    eps = endpoints({V1: [("127.0.1.1", "HEALTHY", False)],
                     V2: [("127.0.1.2", "HEALTHY", False), ("127.0.1.3", "UNHEALTHY", False)]})
    r = trace_request(d, parse_request(URL), port_map=PORTS, endpoints=eps)
    assert r.outcome == v.ROUTED and r.ok and not r.answers and not r.fixes
    v2 = r.clusters[1]
    assert (v2.healthy, [e.address for e in v2.endpoints]) == (1, ["127.0.1.2:3000", "127.0.1.3:3000"])
    assert [e.healthy for e in v2.endpoints] == [True, False]
    assert v2.destination_rule == "catalog.istioinaction"


def test_some_weighted_clusters_missing_fail_that_share():
    r = trace_request(gateway(clusters=[cluster(V2)]), parse_request(URL), port_map=PORTS)
    assert r.outcome == v.PARTIAL and not r.ok
    assert [(a.flag, a.share) for a in r.answers] == [("NC", 20.0)]
    assert "for 20% of requests" in r.answers[0].describe()
    assert len(r.fixes) == 1 and "version-v1" in r.fixes[0] and "version-v2" not in r.fixes[0]


def test_no_healthy_endpoint_gives_503_uh_with_subset_fix():
    d = gateway(clusters=[cluster(V1), cluster(V2)])
    eps = endpoints({V1: [("127.0.1.1", "HEALTHY", False)],
                     V2: [("127.0.1.2", "HEALTHY", True)]})  # outlier-ejected
    r = trace_request(d, parse_request(URL), port_map=PORTS, endpoints=eps)
    assert r.outcome == v.PARTIAL and [(a.flag, a.share) for a in r.answers] == [("UH", 80.0)]
    assert "outlier-ejected" in r.fixes[0]
    r = trace_request(d, parse_request(URL), port_map=PORTS, endpoints=endpoints({}))
    assert r.outcome == v.NO_HEALTHY_UPSTREAM
    assert [(a.status, a.flag, a.details) for a in r.answers] == [(503, "UH", "no_healthy_upstream")]
    assert "subset version-v2 selects no ready pods" in r.fixes[1] and "IST0173" in r.fixes[1]
    assert r.responsible == "DestinationRule catalog.istioinaction"


def test_panic_threshold_routes_to_unhealthy_hosts():
    d = gateway(clusters=[cluster(PLAIN, panic=None)],
                vhosts=[catalog_vhost([route({"prefix": "/"}, cluster=PLAIN)])])
    eps = endpoints({PLAIN: [("127.0.1.1", "UNHEALTHY", False)]})
    r = trace_request(d, parse_request(URL), port_map=PORTS, endpoints=eps)
    assert r.outcome == v.ROUTED and any("panic" in n for n in r.notes)


def test_non_eds_cluster_without_endpoint_data_is_not_uh():
    d = gateway(clusters=[cluster(PLAIN, type_="STRICT_DNS")],
                vhosts=[catalog_vhost([route({"prefix": "/"}, cluster=PLAIN)])])
    r = trace_request(d, parse_request(URL), port_map=PORTS, endpoints=endpoints({}))
    assert r.outcome == v.ROUTED and r.clusters[0].endpoints is None


def test_no_virtual_host_is_404_nr_with_closest_domain():
    r = trace_request(gateway(), parse_request("http://catalog.istioinaction.com/"), port_map=PORTS)
    assert r.outcome == v.NO_ROUTE
    assert [(a.status, a.flag, a.details) for a in r.answers] == [(404, "NR", "route_not_found")]
    assert "closest: catalog.istioinaction.io" in r.fixes[0]
    assert "served: catalog.istioinaction.io" in r.fixes[0]


def test_no_route_in_vhost_lists_routes():
    d = gateway(vhosts=[catalog_vhost([route({"prefix": "/api"}, cluster=PLAIN)])])
    r = trace_request(d, parse_request(URL), port_map=PORTS)
    assert r.outcome == v.NO_ROUTE and r.hops[-1].stage == "route" and not r.hops[-1].ok
    assert "#0 prefix /api" in r.fixes[0] and "GET /items" in r.fixes[0]
    assert r.responsible == "VirtualService catalog-v1-v2.istioinaction"


def test_route_order_first_match_wins_and_headers_select():
    routes = [route({"prefix": "/", "headers": [{"name": "x-canary",
                                                  "string_match": {"exact": "1"}}]}, cluster=V2),
              route({"prefix": "/items"}, cluster=V1),
              route({"prefix": "/"}, cluster=PLAIN)]
    d = gateway(vhosts=[catalog_vhost(routes)], clusters=[cluster(V1), cluster(V2), cluster(PLAIN)])
    canary = trace_request(d, parse_request(URL, ["x-canary:1"]), port_map=PORTS)
    plain = trace_request(d, parse_request(URL), port_map=PORTS)
    other = trace_request(d, parse_request("http://catalog.istioinaction.io/x"), port_map=PORTS)
    assert [r.clusters[0].name for r in (canary, plain, other)] == [V2, V1, PLAIN]
    assert plain.hops[4].name == "#1"


def test_domain_precedence_and_ports_pick_the_vhost():
    vhosts = [vhost("star", ["*"], [route({"prefix": "/"}, direct_response={"status": 418})]),
              vhost("wild", ["*.istioinaction.io"], [route({"prefix": "/"}, cluster=V2)]),
              catalog_vhost([route({"prefix": "/"}, cluster=V1)])]
    d = gateway(vhosts=vhosts, clusters=[cluster(V1), cluster(V2)])

    def vh(url):
        return trace_request(d, parse_request(url), port_map={80: 8080, 8080: 8080}).hops[3].name

    assert vh(URL) == "catalog.istioinaction.io:80"  # exact
    assert vh("http://catalog.istioinaction.io:8080/") == "catalog.istioinaction.io:80"  # `:*`
    assert vh("http://web.istioinaction.io/") == "wild"
    # with a port the host no longer ends with ".istioinaction.io"
    assert vh("http://web.istioinaction.io:8080/") == "star"


def test_direct_response_and_redirect_answer_what_they_say():
    routes = [route({"prefix": "/down"}, direct_response={"status": 503,
                                                          "body": {"inline_string": "bye"}}),
              route({"prefix": "/ok"}, direct_response={"status": 200}),
              route({"prefix": "/old"}, redirect={"path_redirect": "/new",
                                                  "response_code": "PERMANENT_REDIRECT"})]
    d = gateway(vhosts=[catalog_vhost(routes)])

    def t(path):
        return trace_request(d, parse_request("http://catalog.istioinaction.io" + path),
                             port_map=PORTS)

    down, ok, old = t("/down"), t("/ok"), t("/old")
    assert (down.outcome, down.answers[0].status, down.ok) == (v.DIRECT_RESPONSE, 503, False)
    assert "bye" in down.answers[0].details
    assert (ok.outcome, ok.ok) == (v.DIRECT_RESPONSE, True)
    assert (old.outcome, old.answers[0].status, old.ok) == (v.REDIRECT, 308, True)
    assert "/new" in old.answers[0].details


def test_no_listener_is_connection_refused():
    r = trace_request(gateway(), parse_request("http://catalog.istioinaction.io:9090/"))
    assert r.outcome == v.NO_LISTENER and not r.ok
    assert r.answers[0].status is None and r.answers[0].details == "connection refused"
    assert "8080" in r.fixes[0]
    # without the Service's port map, port 80 is not what the gateway listens on either
    assert trace_request(gateway(), parse_request(URL)).outcome == v.NO_LISTENER


def test_cluster_not_found_response_code_is_honoured():
    r = route({"prefix": "/"}, cluster=V1)
    r["route"]["cluster_not_found_response_code"] = "INTERNAL_SERVER_ERROR"
    res = trace_request(gateway(vhosts=[catalog_vhost([r])]), parse_request(URL), port_map=PORTS)
    assert (res.answers[0].status, res.answers[0].flag) == (500, "NC")


def test_https_picks_filter_chain_by_sni():
    chains = [http_chain("https.443.a", match={"server_names": ["a.example.com"],
                                                "transport_protocol": "tls"}),
              http_chain("https.443.b", match={"server_names": ["*.example.com"]})]
    rcs = [{"name": n, "virtual_hosts": [vhost("v", ["*"], [route({"prefix": "/"}, cluster=PLAIN)])]}
           for n in ("https.443.a", "https.443.b")]
    d = dump(listeners=[listener("0.0.0.0_8443", 8443, chains)], route_configs=rcs,
             clusters=[cluster(PLAIN)])

    def rc(url):
        return trace_request(d, parse_request(url), port_map={443: 8443})

    assert rc("https://a.example.com/").hops[2].name == "https.443.a"
    assert rc("https://b.example.com/").hops[2].name == "https.443.b"
    none = rc("https://c.other.com/")
    assert none.outcome == v.NO_FILTER_CHAIN and "c.other.com" in none.fixes[0]


SIDECAR_HTTP = http_chain("80")


def _sidecar(allow_any: bool = True):
    catch = vhost("allow_any", ["*"], [route({"prefix": "/"}, cluster="PassthroughCluster", vs=None)])
    block = vhost("block_all", ["*"], [route({"prefix": "/"}, vs=None,
                                               direct_response={"status": 502})])
    svc = vhost(f"{CATALOG}:80", [CATALOG, "catalog", "catalog.istioinaction"],
                [route({"prefix": "/"}, cluster=PLAIN, vs=None)])
    outbound = listener("virtualOutbound", 15001, [
        {"filters": [{"name": "envoy.filters.network.tcp_proxy",
                      "typed_config": {"cluster": "PassthroughCluster"}}]}],
        use_original_dst=True)
    port80 = listener("0.0.0.0_80", 80, [SIDECAR_HTTP], bind_to_port=False)
    return dump(listeners=[outbound, port80],
                route_configs=[{"name": "80", "virtual_hosts": [svc, catch if allow_any else block]}],
                clusters=[cluster(PLAIN, dr=None)])


def test_sidecar_outbound_port_listener_and_passthrough():
    d = _sidecar()
    r = trace_request(d, parse_request("http://catalog/"))
    assert (r.outcome, r.hops[0].name, r.hops[2].name) == (v.ROUTED, "0.0.0.0_80", "80")
    assert "virtualOutbound" in r.hops[0].detail
    unknown = trace_request(d, parse_request("http://example.org/"))
    assert unknown.outcome == v.PASSTHROUGH and unknown.ok
    tcp = trace_request(d, parse_request("http://example.org:7777/"))
    assert (tcp.outcome, tcp.hops[0].name) == (v.PASSTHROUGH, "virtualOutbound")
    blocked = trace_request(_sidecar(allow_any=False), parse_request("http://example.org/"))
    assert blocked.outcome == v.DIRECT_RESPONSE and blocked.answers[0].status == 502
    assert not blocked.ok


# --- real dumps ------------------------------------------------------------------------------

def test_real_gateway_dump_route_to_missing_cluster():
    d = read_dump(str(DUMPS / "ingressgw_http_8080_rds_cds.json"))
    r = trace_request(d, parse_request("http://bookinfo.example.com/productpage"),
                      route_config="http.8080")
    assert r.outcome == v.NO_CLUSTER
    assert r.clusters[0].name == "outbound|9080||productpage.default.svc.cluster.local"
    assert r.responsible == "VirtualService bookinfo.default"
    assert "retries" in r.hops[2].detail  # the route hop shows the retry policy
    nr = trace_request(d, parse_request("http://x/nothing"), route_config="http.8080")
    assert nr.outcome == v.NO_ROUTE and "#4 prefix /api/v1/products" in nr.fixes[0]


def test_real_https_gateway_dump_static_path():
    d = read_dump(str(DUMPS / "ingressgw_https_443_rds_cds.json"))
    r = trace_request(d, parse_request("https://bookinfo.example.com/static/x.css"),
                      route_config="https.443.https.bookinfo-gateway.default")
    assert r.hops[2].name == "#1"  # prefix /static, after path /productpage
    # the dump has no clusters section: unchecked, and said so
    assert r.clusters[0].exists is None and r.outcome == v.ROUTED
    assert any("clusters not checked" in n for n in r.notes)


def test_real_gateway_routes_ignore_port_in_host_matching():
    d = read_dump(str(DUMPS / "gateway_routes_istio_gateway_prefix.json"))
    r = trace_request(d, parse_request("http://httpbin.example.com:8080/get"),
                      route_config="http.8080")
    assert r.hops[1].name == "httpbin.example.com:80"  # port ignored for host matching
    assert r.clusters[0].exists is None  # the dump has no CDS: unchecked, not "missing"
    k8s = read_dump(str(DUMPS / "gateway_routes_k8s_gateway_pathprefix.json"))
    r = trace_request(k8s, parse_request("http://httpbin.example.com/getter"), route_config="http.80")
    assert r.outcome == v.NO_ROUTE  # path_separated_prefix /get does not match /getter


def test_real_legacy_gateway_full_dump_with_endpoints():
    d = read_dump(str(DUMPS / "legacy_ingressgateway_1.3.0_full.json"))
    eps = read_dump(str(DUMPS / "legacy_admin_clusters_format_json.json")).endpoints
    r = trace_request(d, parse_request("http://bookinfo/productpage"), endpoints=eps)
    assert [h.stage for h in r.hops][:3] == ["listener", "filter chain", "route config"]
    assert r.hops[0].name == "0.0.0.0_80"
    # the /clusters file is from another proxy: productpage has no endpoints there → UH
    assert r.outcome == v.NO_HEALTHY_UPSTREAM


def test_real_sidecar_dump_uses_original_destination():
    d = read_dump(str(DUMPS / "legacy_sidecar_productpage_1.3.0-rc.2_full.json"))
    eps = read_dump(str(DUMPS / "legacy_admin_clusters_format_json.json")).endpoints
    wild = trace_request(d, parse_request("http://reviews:9080/reviews/1"), endpoints=eps)
    assert (wild.hops[0].name, wild.hops[2].name) == ("0.0.0.0_9080", "9080")
    ip = trace_request(d, parse_request("http://reviews:9080/reviews/1"), endpoints=eps,
                       destination_ip="172.21.95.172")
    assert ip.hops[0].name == "172.21.95.172_9080"
    assert ip.hops[2].name == "reviews.default.svc.cluster.local:9080"
    reviews = ip.clusters[0]
    assert ip.outcome == v.ROUTED and (reviews.healthy, len(reviews.endpoints)) == (2, 3)


def test_real_inbound_filter_chain_match_by_port_and_protocol():
    from kubectl_mesh.trace.listener import select_chain

    d = read_dump(str(DUMPS / "sidecar_2023_listeners_authz.yaml"))
    inbound = next(l for l in d.listeners if l.name == "virtualInbound")

    def chain(port, alpn):
        return select_chain(inbound, port=port, destination_ip="10.0.0.5", sni="",
                            transport="raw_buffer", alpn=alpn).name

    assert chain(9080, ("http/1.1",)) == "virtualInbound-catchall-http"
    assert chain(15006, ("http/1.1",)) == "virtualInbound-blackhole"  # destination_port wins
    assert chain(9080, ()) != "virtualInbound-catchall-http"


def test_real_filter_chain_matcher_tree():
    from kubectl_mesh.trace.listener import select_chain

    d = read_dump(str(DUMPS / "waypoint-httpbin_1.21_full_config_dump.json"))
    main = next(l for l in d.listeners if l.name == "main_internal")

    def chain(ip, port, alpn=("http/1.1",)):
        found = select_chain(main, port=port, destination_ip=ip, sni="", transport="raw_buffer",
                             alpn=alpn)
        return found and found.name

    assert chain("10.104.171.68", 8100) == "inbound-vip|8100||httpbin.default.svc.cluster.local-http"
    assert chain("10.104.171.68", 8000) == "inbound-vip|8000||httpbin.default.svc.cluster.local-http"
    assert chain("192.168.195.248", 8000) == "direct-http"
