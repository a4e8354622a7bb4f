"""Small hand-built Envoy dumps in the shapes Istio gives (snake_case, v3 type URLs), mirroring
the sandbox's default scenario: ingress gateway `0.0.0.0_8080` → RDS `http.8080` → vhost
`catalog.istioinaction.io:80` → weighted subsets v1/v2 of catalog (VirtualService
catalog-v1-v2.istioinaction)."""

from __future__ import annotations

from kubectl_mesh.configdump import ConfigDump

ADMIN = "type.googleapis.com/envoy.admin.v3."
CATALOG = "catalog.istioinaction.svc.cluster.local"
V1 = f"outbound|80|version-v1|{CATALOG}"
V2 = f"outbound|80|version-v2|{CATALOG}"
PLAIN = f"outbound|80||{CATALOG}"
VS = "/apis/networking.istio.io/v1/namespaces/istioinaction/virtual-service/catalog-v1-v2"
DR = "/apis/networking.istio.io/v1/namespaces/istioinaction/destination-rule/catalog"
HCM_TYPE = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
            "HttpConnectionManager")


def meta(path: str) -> dict:
    return {"filter_metadata": {"istio": {"config": path}}}


def route(match: dict, *, cluster: str | None = None, weighted: list | None = None,
          vs: str | None = VS, **extra) -> dict:
    """A route: `cluster`, `weighted=[(name, weight), ...]`, or `extra` (direct_response...)."""
    r: dict = {"match": match, **extra}
    if cluster is not None:
        r["route"] = {"cluster": cluster, "timeout": "0s",
                      "retry_policy": {"retry_on": "connect-failure,refused-stream", "num_retries": 2}}
    elif weighted is not None:
        r["route"] = {"weighted_clusters": {"clusters": [{"name": n, "weight": w}
                                                        for n, w in weighted]},
                      "timeout": "0s"}
    if vs:
        r["metadata"] = meta(vs)
    return r


def vhost(name: str, domains: list[str], routes: list[dict]) -> dict:
    return {"name": name, "domains": domains, "routes": routes}


def catalog_vhost(routes: list[dict] | None = None) -> dict:
    routes = routes if routes is not None else [
        route({"prefix": "/", "case_sensitive": True}, weighted=[(V1, 20), (V2, 80)])]
    return vhost("catalog.istioinaction.io:80",
                 ["catalog.istioinaction.io", "catalog.istioinaction.io:*"], routes)


def cluster(name: str, type_: str = "EDS", dr: str | None = DR, panic: float | None = 0) -> dict:
    c: dict = {"name": name, "type": type_, "connect_timeout": "10s"}
    if panic is not None:
        c["common_lb_config"] = {"healthy_panic_threshold": {"value": panic} if panic else {}}
    if dr:
        c["metadata"] = meta(DR)
    return c


def listener(name: str, port: int, chains: list[dict], address: str = "0.0.0.0",
             **extra) -> dict:
    return {"name": name, "address": {"socket_address": {"address": address, "port_value": port}},
            "filter_chains": chains, **extra}


def http_chain(rds: str | None = "http.8080", inline: dict | None = None, match: dict | None = None,
               **hcm) -> dict:
    config: dict = {"@type": HCM_TYPE, "stat_prefix": "outbound_0.0.0.0_8080", **hcm}
    if inline is not None:
        config["route_config"] = inline
    else:
        config["rds"] = {"route_config_name": rds, "config_source": {"ads": {}}}
    chain = {"filters": [{"name": "envoy.filters.network.http_connection_manager",
                          "typed_config": config}]}
    if match:
        chain["filter_chain_match"] = match
    return chain


def dump(*, listeners: list[dict] | None = None, route_configs: list[dict] | None = None,
         clusters: list[dict] | None = None) -> ConfigDump:
    """A config dump; None for a section leaves it out entirely."""
    configs = []
    if clusters is not None:
        configs.append({"@type": ADMIN + "ClustersConfigDump", "dynamic_active_clusters": [
            {"version_info": "1", "cluster": c} for c in clusters]})
    if listeners is not None:
        configs.append({"@type": ADMIN + "ListenersConfigDump", "dynamic_listeners": [
            {"name": l["name"], "active_state": {"version_info": "1", "listener": l}}
            for l in listeners]})
    if route_configs is not None:
        configs.append({"@type": ADMIN + "RoutesConfigDump", "dynamic_route_configs": [
            {"version_info": "1", "route_config": rc} for rc in route_configs]})
    return ConfigDump({"configs": configs}, "test")


def gateway(vhosts: list[dict] | None = None, clusters: list[dict] | None = None,
            **rc_extra) -> ConfigDump:
    """The scenario's gateway; by default CDS lacks the subset clusters (→ 503 NC)."""
    rc = {"name": "http.8080", "virtual_hosts": vhosts or [catalog_vhost()],
          "validate_clusters": False, **rc_extra}
    return dump(listeners=[listener("0.0.0.0_8080", 8080, [http_chain()])], route_configs=[rc],
                clusters=clusters if clusters is not None else [cluster(PLAIN, dr=None)])


def endpoints(hosts: dict[str, list[tuple[str, str, bool]]]) -> list:
    """`/clusters?format=json` for {cluster: [(ip, eds_health, failed_outlier), ...]}."""
    statuses = [{"name": name, "host_statuses": [
        {"address": {"socket_address": {"address": ip, "port_value": 3000}},
         "health_status": {"eds_health_status": health,
                           **({"failed_outlier_check": True} if outlier else {})}}
        for ip, health, outlier in hs]} for name, hs in hosts.items()]
    return ConfigDump({"cluster_statuses": statuses}, "clusters.json").endpoints
