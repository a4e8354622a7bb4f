"""Envoy bootstrap for a sandbox pod's istio-proxy: node identity, admin, ADS to istiod."""

from __future__ import annotations

import json

import yaml

from sandbox.istiod.mesh import DOMAIN_SUFFIX, labels_of, name_of, namespace_of, pod_ip

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


def _static_cluster(name: str, ip: str, port: int, source_ip: str, http2: bool) -> dict:
    cluster = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{
            "endpoint": {"address": {"socket_address": {"address": ip, "port_value": port}}}}]}]},
        "upstream_bind_config": {"source_address": {"address": source_ip, "port_value": 0}},
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}}
    return cluster


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
    return {
        "node": {"id": node_id(pod, proxy_type), "cluster": service_cluster,
                 "locality": {}, "metadata": metadata},
        "stats_config": {"stats_matcher": stats_matcher(pod, mesh_default_config)},
        "admin": {"address": {"socket_address": {"address": admin_address or ip,
                                                  "port_value": ADMIN_PORT}}},
        "dynamic_resources": {
            "ads_config": {"api_type": xds_api_type(pod), "transport_api_version": "V3",
                           "set_node_on_first_message_only": True,
                           "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]},
            "cds_config": ADS_SOURCE,
            "lds_config": ADS_SOURCE,
        },
        "static_resources": {"clusters": [
            _static_cluster("xds-grpc", xds_address[0], int(xds_address[1]), ip, http2=True),
            _static_cluster("prometheus_stats", ip, ADMIN_PORT, ip, http2=False),
        ]},
    }
