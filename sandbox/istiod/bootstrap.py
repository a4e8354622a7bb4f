"""Envoy bootstrap for a sandbox pod's istio-proxy: node identity, admin, ADS to istiod."""

from __future__ import annotations

import copy
import json

import yaml

from sandbox.istiod.listeners import HCM_TYPE, ROUTER
from sandbox.istiod.mesh import DOMAIN_SUFFIX, labels_of, name_of, namespace_of, pod_ip
from sandbox.istiod.proxy import OWN_NETWORK_METADATA

ISTIO_VERSION = "1.28.0"
ADMIN_PORT = 15000
PROMETHEUS_PORT = 15090
STATUS_PORT = 15021
ADS_SOURCE = {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}

# The stats every Istio proxy keeps (pkg/bootstrap/config.go
# `requiredEnvoyStatsMatcherInclusionPrefixes`, `rbacEnvoyStatsMatcherInclusionSuffix` – the
# required suffixes add `downstream_cx_active` only with EXIT_ON_ZERO_ACTIVE_CONNECTIONS, off by
# default – and `requiredEnvoyStatsMatcherInclusionRegexes`).
REQUIRED_STATS_PREFIXES = ("cluster_manager", "listener_manager", "server", "cluster.xds-grpc",
                           "wasm")
REQUIRED_STATS_SUFFIXES = ("rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied")
REQUIRED_STATS_REGEXPS = (r"vhost\..*\.route\..*",)
PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"
STATS_INCLUSION_ANNOTATIONS = {  # proxyStatsMatcher field → the sidecar.istio.io annotation
    "inclusionPrefixes": "sidecar.istio.io/statsInclusionPrefixes",
    "inclusionSuffixes": "sidecar.istio.io/statsInclusionSuffixes",
    "inclusionRegexps": "sidecar.istio.io/statsInclusionRegexps",
}


def workload_name(pod: dict) -> str:
    """The owning Deployment's name (ReplicaSet name minus its hash), else the pod's name."""
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == "ReplicaSet" and "-" in owner.get("name", ""):
            return owner["name"].rsplit("-", 1)[0]
        if owner.get("name"):
            return owner["name"]
    return name_of(pod)


def node_id(pod: dict, proxy_type: str) -> str:
    ns = namespace_of(pod)
    return f"{proxy_type}~{pod_ip(pod)}~{name_of(pod)}.{ns}~{ns}.{DOMAIN_SUFFIX}"


def _pod_ports(pod: dict) -> list[dict]:
    ports = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == "istio-proxy":
            continue
        ports += [{k: p[k] for k in ("name", "containerPort", "protocol") if k in p}
                  for p in container.get("ports") or []]
    return ports


HTTP2 = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    "explicit_http_config": {"http2_protocol_options": {}}}}
# pilot-agent's workload identity socket (pkg/security/security.go
# `DefaultWorkloadIdentitySocketFile`), relative to the proxy's working directory as
# envoy_bootstrap.json's `sds-grpc` cluster names it.
SDS_SOCKET = "./var/run/secrets/workload-spiffe-uds/socket"

# envoy_bootstrap.json `stats_config.stats_tags` (without `extraStatTags`, none by default):
# the `;` that istiod ends cluster `alt_stat_name`s and HCM `stat_prefix`es with
# (pilot/pkg/networking/util/util.go `DelimitedStatsPrefix`) is where these cut the tag out.
STATS_TAGS = (
    ("cluster_name", r"^cluster(\.(.+);)"),
    ("http_conn_manager_prefix",
     r"^http\.(((?:[_.[:digit:]\w]*|[_\[\]aAbBcCdDeEfF[:digit:]\w\:]*));\.)"),
    ("thread_name", r"^server(\.(.+))\.watchdog"),
    ("tcp_prefix", r"^tcp\.((.*?)\.)\w+?$"),
    ("response_code", r"_rq(_(\d{3}))$"),
    ("response_code_class", r"_rq(_(\dxx))$"),
    ("http_conn_manager_listener_prefix",
     r"^listener(?=\.).*?\.http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"),
    ("listener_address", r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"),
    ("mongo_prefix", r"^mongo\.(.+?)\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$"),
    ("cache", r"(cache\.(.+?)\.)"),
    ("component", r"(component\.(.+?)\.)"),
    ("tag", r"(tag\.(.+?);\.)"),
    ("wasm_filter", r"(wasm_filter\.(.+?)\.)"),
    ("authz_enforce_result", r"rbac(\.(allowed|denied))"),
    ("authz_dry_run_action", r"(\.istio_dry_run_(allow|deny)_)"),
    ("authz_dry_run_result", r"(\.shadow_(allowed|denied))"),
)


def _endpoint(address: dict) -> dict:
    return {"endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}]}


def _socket(ip: str, port: int) -> dict:
    return {"socket_address": {"protocol": "TCP", "address": ip, "port_value": port}}


def static_clusters(ip: str, localhost: str, xds_address: tuple[str, int]) -> list[dict]:
    """envoy_bootstrap.json's `static_resources.clusters`, each with `alt_stat_name`
    "<name>;". Where the sandbox has no pilot-agent they differ, and say so:
    - `agent` is pilot-agent's status port (15020), whose `/healthz/ready` asks Envoy's admin
      whether the server is LIVE with its workers started (pilot/cmd/pilot-agent/status/
      server.go `handleReadyProbe`, ready/probe.go `checkEnvoyReadiness`); here it is Envoy's
      admin itself, whose `/ready` says LIVE, and the 15021 route rewrites the path to
      `/ready` (`static_listeners`);
    - `xds-grpc` is a pipe to pilot-agent's XDS proxy (`{ConfigPath}/XDS`); here a TCP
      address of istiod itself, bound to the pod IP so istiod sees the pod's address;
    - `sds-grpc` is the pipe real Istio names; nothing serves it here (the sandbox's
      listeners use no SDS), so Envoy never connects."""
    xds = {
        "name": "xds-grpc", "alt_stat_name": "xds-grpc;", "type": "STATIC",
        "connect_timeout": "1s", "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": "xds-grpc", **_endpoint(
            {"socket_address": {"address": xds_address[0],
                                "port_value": int(xds_address[1])}})},
        "circuit_breakers": {"thresholds": [
            {"priority": priority, "max_connections": 100000, "max_pending_requests": 100000,
             "max_requests": 100000} for priority in ("DEFAULT", "HIGH")]},
        "upstream_connection_options": {"tcp_keepalive": {"keepalive_time": 300}},
        "max_requests_per_connection": 1,
        "typed_extension_protocol_options": copy.deepcopy(HTTP2),
        "upstream_bind_config": {"source_address": {"address": ip, "port_value": 0}},
    }
    return [
        {"name": "prometheus_stats", "alt_stat_name": "prometheus_stats;", "type": "STATIC",
         "connect_timeout": "0.250s", "lb_policy": "ROUND_ROBIN",
         "load_assignment": {"cluster_name": "prometheus_stats",
                             **_endpoint(_socket(localhost, ADMIN_PORT))}},
        {"name": "agent", "alt_stat_name": "agent;", "type": "STATIC",
         "connect_timeout": "0.250s", "lb_policy": "ROUND_ROBIN",
         "load_assignment": {"cluster_name": "agent", **_endpoint(_socket(localhost, ADMIN_PORT))}},
        {"name": "sds-grpc", "alt_stat_name": "sds-grpc;", "type": "STATIC",
         "typed_extension_protocol_options": copy.deepcopy(HTTP2),
         "connect_timeout": "1s", "lb_policy": "ROUND_ROBIN",
         "load_assignment": {"cluster_name": "sds-grpc",
                             **_endpoint({"pipe": {"path": SDS_SOCKET}})}},
        xds,
    ]


def _backend_hcm(stat_prefix: str, routes: list[dict]) -> dict:
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": HCM_TYPE, "codec_type": "AUTO", "stat_prefix": stat_prefix,
        "route_config": {"virtual_hosts": [{"name": "backend", "domains": ["*"],
                                            "routes": routes}]},
        "http_filters": [copy.deepcopy(ROUTER)]}}


def static_listeners(wildcard: str) -> list[dict]:
    """envoy_bootstrap.json's `static_resources.listeners`: Prometheus' `/stats/prometheus`
    on 15090 (cluster `prometheus_stats`, Envoy's admin) and the health check
    `/healthz/ready` on 15021 (cluster `agent`), each with the unnamed route config whose
    virtual host is `backend`. Named `0.0.0.0_<port>` as real's `{wildcard}_<port>`; they
    listen on `wildcard`: 0.0.0.0 in a pod's own network namespace, the pod IP on the shared
    loopback. The 15021 route rewrites to `/ready`: the sandbox's `agent` is Envoy's admin
    (`static_clusters`)."""
    def listener(port: int, hcm: dict) -> dict:
        return {"name": f"0.0.0.0_{port}", "address": _socket(wildcard, port),
                "ignore_global_conn_limit": True, "bypass_overload_manager": True,
                "filter_chains": [{"filters": [hcm]}]}
    return [
        listener(PROMETHEUS_PORT, _backend_hcm("stats", [
            {"match": {"prefix": "/stats/prometheus"},
             "route": {"cluster": "prometheus_stats"}}])),
        listener(STATUS_PORT, _backend_hcm("agent", [
            {"match": {"prefix": "/healthz/ready"},
             "route": {"cluster": "agent", "prefix_rewrite": "/ready"}}])),
    ]


MESH_CONFIGMAP = ("istio-system", "istio")  # the `istio` ConfigMap's `mesh` key


def mesh_default_config(configmap: dict | None) -> dict:
    """`defaultConfig` of the mesh config in the `istio` ConfigMap (key `mesh`, YAML), which the
    injector hands each sidecar as its PROXY_CONFIG (pkg/kube/inject/webhook.go
    `GetProxyConfigOrDefault`; injection-template.yaml `PROXY_CONFIG`) and a gateway's
    pilot-agent reads as its mesh config file (pilot/cmd/pilot-agent/config/config.go
    `getMeshConfig`); {} without one, or when it is not a YAML map."""
    text = ((configmap or {}).get("data") or {}).get("mesh") or ""
    try:
        mesh = yaml.safe_load(text) if text else {}
    except yaml.YAMLError:
        return {}
    config = mesh.get("defaultConfig") if isinstance(mesh, dict) else None
    return config if isinstance(config, dict) else {}


def proxy_stats_matcher(pod: dict, mesh_default_config: dict | None = None) -> dict:
    """The `proxyStatsMatcher` of the proxy config pilot-agent builds for `pod`: the mesh
    config's `defaultConfig`, overlaid by the pod's `proxy.istio.io/config` annotation
    (pilot/cmd/pilot-agent/config/config.go `ConstructProxyConfig`, `getMeshConfig`). The
    overlay replaces each field it names whole (pkg/config/mesh/mesh.go `MergeProxyConfig`:
    jsonpb sets every field present in the YAML to a new value), so an annotation's
    `proxyStatsMatcher` replaces the mesh's rather than adding to it. ValueError for an
    annotation that is not a YAML map (pilot-agent then does not start)."""
    matcher = (mesh_default_config or {}).get("proxyStatsMatcher")
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(PROXY_CONFIG_ANNOTATION)
    if text:
        try:
            overlay = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"pod {name_of(pod)}.{namespace_of(pod)}: annotation "
                             f"{PROXY_CONFIG_ANNOTATION} is not YAML: {e}") from None
        if not isinstance(overlay, dict):
            raise ValueError(f"pod {name_of(pod)}.{namespace_of(pod)}: annotation "
                             f"{PROXY_CONFIG_ANNOTATION} is not a proxy config map")
        if "proxyStatsMatcher" in overlay:
            matcher = overlay["proxyStatsMatcher"]
    return matcher if isinstance(matcher, dict) else {}


def stats_matcher(pod: dict, mesh_default_config: dict | None = None) -> dict:
    """The bootstrap's `stats_config.stats_matcher`, as Istio's
    tools/packaging/common/envoy_bootstrap.json renders it: `reporter=`, then the inclusion
    prefixes, suffixes and regexps pkg/bootstrap/config.go `getStatsOptions` builds, then
    `component` and `istio`. Per kind, a non-empty `sidecar.istio.io/statsInclusion*`
    annotation wins over the proxy config's list (they are not merged), the required ones
    are always added, and `{pod_ip}` stands for each of the pod's IPs (`substituteValues`)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    config = proxy_stats_matcher(pod, mesh_default_config)
    ip = pod_ip(pod) or ""
    required = {"inclusionPrefixes": REQUIRED_STATS_PREFIXES,
                "inclusionSuffixes": REQUIRED_STATS_SUFFIXES,
                "inclusionRegexps": REQUIRED_STATS_REGEXPS}

    def inclusion(field: str) -> list[str]:
        given = annotations.get(STATS_INCLUSION_ANNOTATIONS[field]) or ""
        values = given.split(",") if given else [str(v) for v in config.get(field) or []]
        return [v.replace("{pod_ip}", ip) for v in values + list(required[field])]

    patterns = [{"prefix": "reporter="}]
    patterns += [{"prefix": v} for v in inclusion("inclusionPrefixes")]
    patterns += [{"suffix": v} for v in inclusion("inclusionSuffixes")]
    patterns += [{"safe_regex": {"regex": v}} for v in inclusion("inclusionRegexps")]
    patterns += [{"prefix": "component"}, {"prefix": "istio"}]
    return {"inclusion_list": {"patterns": patterns}}


def xds_api_type(pod: dict) -> str:
    """`DELTA_GRPC` unless the pod's proxy sets ISTIO_DELTA_XDS false: pilot-agent's
    `features.DeltaXds` (pilot/pkg/features/experimental.go, default true) picks the
    bootstrap's `xds_type` (pkg/bootstrap/config.go `toTemplateParams`); per pod through the
    `proxy.istio.io/config` annotation's proxyMetadata, as Istio's own tests select SotW
    (pkg/test/framework/components/echo/common/deployment/echos.go)."""
    annotation = ((pod.get("metadata") or {}).get("annotations") or {}).get(
        "proxy.istio.io/config") or ""
    try:
        config = yaml.safe_load(annotation) or {}
    except yaml.YAMLError:
        config = {}
    metadata = config.get("proxyMetadata") if isinstance(config, dict) else None
    value = str((metadata or {}).get("ISTIO_DELTA_XDS", "")) if isinstance(metadata, dict) \
        else ""
    # strconv.ParseBool's false forms; anything else keeps the default
    return "GRPC" if value in ("0", "f", "F", "FALSE", "false", "False") else "DELTA_GRPC"


def render_bootstrap(pod: dict, proxy_type: str, xds_address: tuple[str, int], *,
                     admin_address: str | None = None,
                     mesh_default_config: dict | None = None) -> dict:
    """The bootstrap JSON for the pod's Envoy (`proxy_type` is "sidecar" or "router"); its
    admin listens on `admin_address` (default the pod IP: pods sharing the host's network;
    127.0.0.1 in a pod's own network namespace, as Istio's
    tools/packaging/common/envoy_bootstrap.json has it). `mesh_default_config` is the mesh
    config's `defaultConfig` (its `proxyStatsMatcher` is read: `stats_matcher`)."""
    if proxy_type not in ("sidecar", "router"):
        raise ValueError(f"proxy_type must be 'sidecar' or 'router', not {proxy_type!r}")
    ip = pod_ip(pod)
    if not ip:
        raise ValueError(f"pod {name_of(pod)}.{namespace_of(pod)} has no status.podIP yet")
    ns = namespace_of(pod)
    labels = labels_of(pod)
    workload = workload_name(pod)
    service_cluster = f"{labels.get('app', workload)}.{ns}"
    metadata = {
        "NAME": name_of(pod),
        "NAMESPACE": ns,
        "LABELS": labels,
        "ANNOTATIONS": (pod.get("metadata") or {}).get("annotations") or {},
        "CLUSTER_ID": "Kubernetes",
        "ISTIO_VERSION": ISTIO_VERSION,
        "INSTANCE_IPS": ip,
        "WORKLOAD_NAME": workload,
        "OWNER": f"kubernetes://apis/apps/v1/namespaces/{ns}/deployments/{workload}",
        "MESH_ID": "cluster.local",
        "SERVICE_ACCOUNT": (pod.get("spec") or {}).get("serviceAccountName", "default"),
        "POD_PORTS": json.dumps(_pod_ports(pod)),
        "ENVOY_PROMETHEUS_PORT": PROMETHEUS_PORT,
        "ENVOY_STATUS_PORT": STATUS_PORT,
        "PROXY_CONFIG": {"discoveryAddress": f"{xds_address[0]}:{xds_address[1]}",
                         "proxyAdminPort": ADMIN_PORT},
        "sandbox": True,
    }
    if proxy_type == "sidecar":
        metadata["INTERCEPTION_MODE"] = "REDIRECT"
    localhost = admin_address or ip
    # admin on 127.0.0.1: the pod has a network namespace of its own
    own_network = localhost == "127.0.0.1"
    if own_network:
        # The sandbox's, not Istio's: the sandbox istiod gives such a pod real istiod's
        # wildcard listeners and inbound clusters (sandbox/istiod/proxy.py
        # `Proxy.own_network`) rather than the shared loopback's.
        metadata[OWN_NETWORK_METADATA] = "true"
    return {
        "node": {"id": node_id(pod, proxy_type), "cluster": service_cluster,
                 "locality": {}, "metadata": metadata},
        "stats_config": {
            "use_all_default_tags": False,
            "stats_tags": [{"tag_name": name, "regex": regex} for name, regex in STATS_TAGS],
            "stats_matcher": stats_matcher(pod, mesh_default_config)},
        "admin": {"address": {"socket_address": {"address": localhost,
                                                  "port_value": ADMIN_PORT}}},
        "dynamic_resources": {
            "ads_config": {"api_type": xds_api_type(pod), "transport_api_version": "V3",
                           "set_node_on_first_message_only": True,
                           "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]},
            "cds_config": ADS_SOURCE,
            "lds_config": ADS_SOURCE,
        },
        "static_resources": {
            "clusters": static_clusters(ip, localhost, xds_address),
            "listeners": static_listeners("0.0.0.0" if own_network else ip),
        },
        # Traffic stats are created on first use. The template's `cluster_manager` block
        # (`enable_deferred_cluster_creation`) is rendered only with an outlier log path, LRS
        # or self discovery (pkg/bootstrap/config.go `getNodeMetaData` options), none by
        # default, so it is left out.
        "deferred_stat_options": {"enable_deferred_creation_stats": True},
    }
