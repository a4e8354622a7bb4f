"""LDS: Istio-shaped listeners. On the double pods share the host loopback, so listeners that
must accept traffic bind the pod IP (names keep Istio's `0.0.0.0_<port>` form); a pod in a
network namespace of its own gets real istiod's wildcard ones (`sidecar_listeners`)."""

from __future__ import annotations

import copy

from sandbox.istiod.clusters import ADS_SOURCE, cluster_name, inbound_ports
from sandbox.istiod.mesh import Mesh
from sandbox.istiod.proxy import Proxy
from sandbox.istiod.outbound import OutboundListener, outbound_listeners
from sandbox.istiod.protocol import HTTP, TCP
from sandbox.istiod.routes import gateway_ports

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
HTTP_INSPECTOR_TYPE = ("type.googleapis.com/"
                       "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector")
ORIGINAL_DST_TYPE = ("type.googleapis.com/"
                     "envoy.extensions.filters.listener.original_dst.v3.OriginalDst")
# listener.go `plaintextHTTPALPNs` without PILOT_HTTP10 (features.HTTP10, off by default).
PLAINTEXT_HTTP_ALPNS = ("http/1.1", "h2c")
HCM_TYPE = ("type.googleapis.com/"
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager")

# Istio's default TEXT access log format (meshConfig.accessLogFile with the default encoding).
ACCESS_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    '%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% '
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    '%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% '
    '%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n'
)
ACCESS_LOG = {
    "name": "envoy.access_loggers.file",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": "/dev/stdout",
        "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
    },
}
ROUTER = {"name": "envoy.filters.http.router", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def _address(ip: str, port: int) -> dict:
    return {"socket_address": {"address": ip, "port_value": port}}


def http_connection_manager(stat_prefix: str, *, rds: str | None = None,
                            route_config: dict | None = None, gateway: bool = False) -> dict:
    # istiod ends HCM stat prefixes in `;` for the bootstrap's `http_conn_manager_prefix` stats
    # tag (pilot/pkg/networking/core/listener.go, listener_inbound.go `StatPrefix`, gateway.go:
    # util.go `DelimitedStatsPrefix`): `http.outbound_0.0.0.0_80;.rds.80.version_text`
    config: dict = {"@type": HCM_TYPE, "stat_prefix": f"{stat_prefix};"}
    if rds is not None:
        config["rds"] = {"config_source": ADS_SOURCE, "route_config_name": rds}
    else:
        config["route_config"] = route_config
    config.update({
        # Fresh copies: protobuf's ParseDict deletes and restores "@type" inside Any dicts
        # while parsing, so module-level dicts shared by concurrent pushes broke (KeyError).
        "http_filters": [copy.deepcopy(ROUTER)],
        "access_log": [copy.deepcopy(ACCESS_LOG)],
        "use_remote_address": gateway,
        "normalize_path": True,
        "request_id_extension": {"typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig",
            "use_request_id_for_trace_sampling": True}},
    })
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": config}


def gateway_listeners(mesh: Mesh, proxy: Proxy) -> list[dict]:
    targets = sorted({target for _, _, _, target in gateway_ports(mesh, proxy)})
    return [{
        "name": f"0.0.0.0_{target}",
        "address": _address(proxy.ip, target),
        "filter_chains": [{"filters": [http_connection_manager(
            f"outbound_0.0.0.0_{target}", rds=f"http.{target}", gateway=True)]}],
        "traffic_direction": "OUTBOUND",
    } for target in targets]


def _inbound_route(port: int) -> dict:
    name = cluster_name("inbound", port)
    return {"name": name, "validate_clusters": False, "virtual_hosts": [{
        "name": f"inbound|http|{port}", "domains": ["*"], "routes": [{
            "name": "default", "match": {"prefix": "/"},
            "route": {"cluster": name, "timeout": "0s"},
            "decorator": {"operation": f":{port}/*"}}]}]}


def tcp_proxy(cluster: str) -> dict:
    """A tcp_proxy to `cluster` with the mesh's access log, as real istiod sets it on its
    outbound TCP chains (listener_builder.go `buildOutboundCatchAllNetworkFiltersOnly`,
    networkfilter.go via `accessLogBuilder.setTCPAccessLog`)."""
    return {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
        "@type": TCP_PROXY_TYPE, "stat_prefix": cluster, "cluster": cluster,
        "access_log": [copy.deepcopy(ACCESS_LOG)]}}


def outbound_listener(entry: OutboundListener) -> dict:
    """One outbound listener as pilot/pkg/networking/core/listener.go
    `buildListenerFromEntry` builds it. HTTP: a chain matching plaintext HTTP (`raw_buffer`,
    ALPN `http/1.1,h2c` set by the HTTP inspector) to RDS `<port>`, and the
    `PassthroughFilterChain` default chain to PassthroughCluster for other TCP traffic
    (`buildOutboundCatchAllNetworkFiltersOnly`). Sniffed (AUTO): the same HTTP chain, RDS
    `<host>:<port>`, and the Service's tcp_proxy as the default chain. TCP: one chain, the
    tcp_proxy to `outbound|<port>||<host>` (tls.go `buildSidecarOutboundTCPFilterChainOpts`).
    None binds: the sandbox has no iptables to send traffic here."""
    listener: dict = {
        "name": entry.name,
        "address": _address(entry.bind, entry.port),
        "bind_to_port": False,
        "traffic_direction": "OUTBOUND",
        "continue_on_listener_filters_timeout": True,
        # meshConfig.protocolDetectionTimeout defaults to 0s (pkg/config/mesh/mesh.go).
        "listener_filters_timeout": "0s",
    }
    service_cluster = cluster_name("outbound", entry.port, "", entry.service.fqdn)
    if entry.protocol == TCP:
        listener["filter_chains"] = [{"filters": [tcp_proxy(service_cluster)]}]
        return listener
    listener["listener_filters"] = [{"name": "envoy.filters.listener.http_inspector",
                                     "typed_config": {"@type": HTTP_INSPECTOR_TYPE}}]
    listener["filter_chains"] = [{
        "filter_chain_match": {"transport_protocol": "raw_buffer",
                               "application_protocols": list(PLAINTEXT_HTTP_ALPNS)},
        "filters": [http_connection_manager(f"outbound_{entry.name}", rds=entry.rds)],
    }]
    if entry.protocol == HTTP:
        listener["default_filter_chain"] = {"filter_chain_match": {},
                                            "name": "PassthroughFilterChain",
                                            "filters": [tcp_proxy("PassthroughCluster")]}
    else:
        listener["default_filter_chain"] = {"filters": [tcp_proxy(service_cluster)]}
    return listener


def sidecar_listeners(mesh: Mesh, proxy: Proxy) -> list[dict]:
    """virtualOutbound (15001), virtualInbound (15006) and the outbound listeners. In a pod
    network namespace of its own (`proxy.own_network`, where istio-init's iptables redirect
    to them) as real istiod builds them: both on 0.0.0.0 (listener_builder.go
    `buildVirtualOutboundListener`; listener_inbound.go `buildInboundListeners` →
    `buildInboundListener` with bindToPort false), virtualInbound with the
    `envoy.filters.listener.original_dst` filter (`populateListenerFilters`), so that its
    chains match the port the connection was sent to, and a last chain to
    InboundPassthroughCluster for other ports (`buildInboundPassthroughChains`). On the
    shared loopback they bind the pod IP and nothing redirects to them."""
    passthrough = tcp_proxy("PassthroughCluster")
    wildcard = "0.0.0.0" if proxy.own_network else proxy.ip
    chains = [{
        "name": f"0.0.0.0_{port}",
        "filter_chain_match": {"destination_port": port},
        "filters": [http_connection_manager(f"inbound_0.0.0.0_{port}",
                                            route_config=_inbound_route(port))],
    } for port in inbound_ports(mesh, proxy)]
    if proxy.own_network:
        chains.append({"name": "virtualInbound",
                       "filters": [tcp_proxy("InboundPassthroughCluster")]})
    inbound = {
        "name": "virtualInbound",
        "address": _address(wildcard, 15006),
        "filter_chains": chains or [{
            "name": "virtualInbound-blackhole", "filters": [{
                "name": "envoy.filters.network.tcp_proxy", "typed_config": {
                    "@type": TCP_PROXY_TYPE,
                    "stat_prefix": "BlackHoleCluster", "cluster": "BlackHoleCluster"}}]}],
        "traffic_direction": "INBOUND",
    }
    if proxy.own_network:
        inbound["listener_filters"] = [{"name": "envoy.filters.listener.original_dst",
                                        "typed_config": {"@type": ORIGINAL_DST_TYPE}}]
        inbound["continue_on_listener_filters_timeout"] = True
    listeners = [{
        "name": "virtualOutbound",
        "address": _address(wildcard, 15001),
        "filter_chains": [{"name": "virtualOutbound-catchall-tcp", "filters": [passthrough]}],
        "use_original_dst": True,
        "traffic_direction": "OUTBOUND",
    }, inbound]
    listeners.extend(outbound_listener(entry) for entry in outbound_listeners(mesh))
    return listeners


def listeners_for(mesh: Mesh, proxy: Proxy) -> list[dict]:
    if proxy.type == "router":
        return gateway_listeners(mesh, proxy)
    return sidecar_listeners(mesh, proxy)
