"""CDS and EDS: Istio-shaped clusters and ClusterLoadAssignments as proto-JSON dicts."""

from __future__ import annotations

from sandbox.istiod.mesh import Mesh, Service, namespace_of, name_of, pod_ip, pod_ready, target_port
from sandbox.istiod.proxy import Proxy

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
INVALID_ANNOTATION = "sandbox.kubectl-mesh.io/invalid"
# cluster_builder.go `maxSecondsValue`: (MaxInt64 - 999999999) / 1e9, about 292 years
MAX_SECONDS = (2**63 - 1 - 999999999) // 10**9
ADS_SOURCE = {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}


def cluster_name(direction: str, port: int | str, subset: str = "", fqdn: str = "") -> str:
    return f"{direction}|{port}|{subset}|{fqdn}"


def config_path(kind: str, obj: dict) -> str:
    """The `istio.config` metadata value naming the Istio object a resource came from."""
    return (f"/apis/networking.istio.io/v1/namespaces/{namespace_of(obj)}/"
            f"{kind}/{name_of(obj)}")


def _bind(cluster: dict, address: str) -> None:
    cluster["upstream_bind_config"] = {"source_address": {"address": address, "port_value": 0}}


def _common(name: str, proxy: Proxy) -> dict:
    cluster = {
        "name": name,
        # istiod's cluster stat names end in `;`, where the bootstrap's `cluster_name` stats tag
        # ends (pilot/pkg/networking/core/cluster_builder.go `buildCluster`,
        # util.go `DelimitedStatsPrefix`): `cluster.<name>;.upstream_rq_total`
        "alt_stat_name": f"{name};",
        "connect_timeout": "10s",
        # Istio sets 0 so that all-unhealthy endpoints give UH instead of panic routing.
        "common_lb_config": {"healthy_panic_threshold": {}},
    }
    # All pods share the host loopback: bind so access logs show the pod's address.
    _bind(cluster, proxy.ip)
    return cluster


def _invalid(dr: dict | None) -> bool:
    annotations = (dr or {}).get("metadata", {}).get("annotations") or {}
    return str(annotations.get(INVALID_ANNOTATION, "")).lower() == "true"


def _eds_cluster(name: str, service: Service, proxy: Proxy, dr: dict | None) -> dict:
    cluster = _common(name, proxy)
    cluster.update({
        "type": "EDS",
        "eds_cluster_config": {"service_name": name, "eds_config": ADS_SOURCE},
        "lb_policy": "LEAST_REQUEST",
    })
    istio = {"services": [{"host": service.fqdn, "name": service.name,
                           "namespace": service.namespace}]}
    if dr is not None:
        istio["config"] = config_path("destination-rule", dr)
        policy = ((dr.get("spec") or {}).get("trafficPolicy") or {}).get("loadBalancer") or {}
        simple = policy.get("simple")
        if simple in ("ROUND_ROBIN", "RANDOM", "LEAST_REQUEST"):
            cluster["lb_policy"] = simple
        if _invalid(dr):
            # Deliberately invalid (sandbox annotation): a ring smaller than its minimum, so
            # Envoy NACKs CDS with its own message ("Error adding/updating cluster(s) ...").
            cluster["lb_policy"] = "RING_HASH"
            cluster["ring_hash_lb_config"] = {"minimum_ring_size": "2048",
                                              "maximum_ring_size": "1024"}
    cluster["metadata"] = {"filter_metadata": {"istio": istio}}
    return cluster


def _subsets(dr: dict | None) -> list[dict]:
    return [s for s in ((dr or {}).get("spec") or {}).get("subsets") or [] if s.get("name")]


def outbound_clusters(mesh: Mesh, proxy: Proxy) -> list[dict]:
    clusters = []
    for service in mesh.services:
        dr = mesh.destination_rule_for(service.fqdn)
        for port in service.ports:
            number = int(port["port"])
            clusters.append(_eds_cluster(cluster_name("outbound", number, "", service.fqdn),
                                         service, proxy, dr))
            for subset in _subsets(dr):
                clusters.append(_eds_cluster(
                    cluster_name("outbound", number, subset["name"], service.fqdn),
                    service, proxy, dr))
    return clusters


def inbound_ports(mesh: Mesh, proxy: Proxy) -> list[int]:
    """Target ports of the Services selecting the proxy's pod (each becomes `inbound|P||`)."""
    pod = mesh.pod(proxy.name, proxy.namespace)
    ports: list[int] = []
    for service in mesh.services_selecting(proxy.labels, proxy.namespace):
        for port in service.ports:
            number = target_port(port, pod)
            if number is not None and number not in ports:
                ports.append(number)
    return sorted(ports)


# cluster_builder.go `InboundPassthroughBindIpv4`: the source address istio-iptables lets
# past the capture (`-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN`, tools/istio-iptables/
# pkg/capture/run.go), so that Envoy's connection to its own pod's app is not redirected back.
INBOUND_PASSTHROUGH_BIND = "127.0.0.6"


def inbound_clusters(mesh: Mesh, proxy: Proxy) -> list[dict]:
    """`inbound|P||` per port. In a pod network namespace of its own (`proxy.own_network`)
    as real istiod builds them (cluster_builder.go `buildInboundCluster` with no bind
    address): ORIGINAL_DST, CLUSTER_PROVIDED, no endpoints, no cleanup, bound to 127.0.0.6:
    they connect to the address iptables redirected the connection from. On the shared
    loopback nothing captures, so a connection reaches the inbound listener on its own port
    and ORIGINAL_DST would connect back to the listener: there they stay STATIC, to the pod
    IP and port."""
    clusters = []
    for number in inbound_ports(mesh, proxy):
        name = cluster_name("inbound", number)
        cluster = _common(name, proxy)
        if proxy.own_network:
            cluster.update({"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED",
                            # `maxSecondsValue`: "Disable cleanup for inbound clusters"
                            "cleanup_interval": f"{MAX_SECONDS}s"})
            _bind(cluster, INBOUND_PASSTHROUGH_BIND)
        else:
            cluster.update({
                "type": "STATIC",
                "lb_policy": "ROUND_ROBIN",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {
                        "address": proxy.ip, "port_value": number}}}}]}]},
            })
        clusters.append(cluster)
    return clusters


def special_clusters(proxy: Proxy) -> list[dict]:
    """BlackHoleCluster for every proxy, PassthroughCluster for sidecars only: "Gateways do
    not require the default passthrough cluster as they do not have original dst listeners"
    (pilot/pkg/networking/core/cluster.go `buildClusters`, cluster_builder.go
    `buildBlackHoleCluster`, `buildDefaultPassthroughCluster`)."""
    blackhole = _common("BlackHoleCluster", proxy)
    blackhole.update({"type": "STATIC", "lb_policy": "ROUND_ROBIN"})
    if proxy.type != "sidecar":
        return [blackhole]
    passthrough = _common("PassthroughCluster", proxy)
    passthrough.update({"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED"})
    return [blackhole, passthrough]


def inbound_passthrough_cluster(proxy: Proxy) -> dict:
    """A sidecar's InboundPassthroughCluster (cluster_builder.go
    `buildInboundPassthroughCluster`: the passthrough cluster renamed, bound to 127.0.0.6 so
    that iptables lets its connections past the capture). In a pod network namespace of its
    own so; on the shared loopback nothing captures and it binds the pod IP as every sandbox
    cluster does (no listener routes to it there)."""
    cluster = _common("InboundPassthroughCluster", proxy)
    cluster.update({"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED"})
    if proxy.own_network:
        _bind(cluster, INBOUND_PASSTHROUGH_BIND)
    return cluster


def clusters_for(mesh: Mesh, proxy: Proxy) -> list[dict]:
    result = outbound_clusters(mesh, proxy) + special_clusters(proxy)
    if proxy.type == "sidecar":
        result += inbound_clusters(mesh, proxy) + [inbound_passthrough_cluster(proxy)]
    return result


def _endpoint_port(service: Service, number: int, pod: dict) -> int | None:
    port = service.port(number)
    return target_port(port, pod) if port else None


def load_assignment(mesh: Mesh, name: str) -> dict | None:
    """The ClusterLoadAssignment of an `outbound|port|subset|fqdn` cluster, None if unknown."""
    parts = name.split("|")
    if len(parts) != 4 or parts[0] != "outbound" or not parts[1].isdigit():
        return None
    number, subset, fqdn = int(parts[1]), parts[2], parts[3]
    service = mesh.service_by_host(fqdn)
    if service is None or service.port(number) is None:
        return None
    subset_labels: dict = {}
    if subset:
        match = next((s for s in _subsets(mesh.destination_rule_for(fqdn))
                      if s["name"] == subset), None)
        if match is None:
            return None
        subset_labels = match.get("labels") or {}
    lb_endpoints = []
    api_server = mesh.api_server_endpoint(service)
    if api_server is not None and not subset_labels:
        lb_endpoints.append({
            "endpoint": {"address": {"socket_address": {"address": api_server[0],
                                                        "port_value": api_server[1]}}},
            "health_status": "HEALTHY", "load_balancing_weight": 1,
        })
    for pod in mesh.pods_for(service, subset_labels):
        port = _endpoint_port(service, number, pod)
        if port is None:
            continue
        lb_endpoints.append({
            "endpoint": {"address": {"socket_address": {"address": pod_ip(pod),
                                                        "port_value": port}}},
            "health_status": "HEALTHY" if pod_ready(pod) else "UNHEALTHY",
            "load_balancing_weight": 1,
        })
    assignment: dict = {"cluster_name": name}
    if lb_endpoints:
        assignment["endpoints"] = [{"locality": {}, "lb_endpoints": lb_endpoints}]
    return assignment


def load_assignments_for(mesh: Mesh, proxy: Proxy) -> list[dict]:
    names = [c["name"] for c in clusters_for(mesh, proxy) if c.get("type") == "EDS"]
    return [a for a in (load_assignment(mesh, n) for n in names) if a is not None]
