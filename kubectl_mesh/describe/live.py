"""What a proxy actually carries: the VirtualService and DestinationRule each of its routes and
clusters came from, read from Envoy's config dump.

istiod stamps every route and cluster it builds from an Istio object with the object's path in
`metadata.filter_metadata.istio.config` (pilot/pkg/networking/util/util.go
`BuildConfigInfoMetadata`); istioctl's describe finds the objects that way
(`getIstioVirtualServicePathForSvcFromRoute`, `getIstioDestinationRulePathForSvc`). Here the
objects are known from the cluster, and the dump says whether the proxy has them: a missing one
means istiod has not pushed it (or Envoy rejected it), a name the cluster does not have means
the proxy is stale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from kubectl_mesh.configdump.clusters import Cluster, ClusterName
from kubectl_mesh.configdump.routes import RouteConfig

CLUSTER_MASK = "dynamic_active_clusters"
ROUTE_MASK = "dynamic_route_configs"
# routeDestinationMatchesSvc: a sidecar's virtual host names the service in its domains.
_SERVICE_DOMAIN = re.compile(r"^([^.]+)\.([^.]+)\.svc\.cluster\.local(:\d+)?$")


@dataclass
class ProxyConfig:
    """One proxy's routes and clusters, or why they could not be read (`error`)."""

    ref: str  # name.namespace of the pod
    routes: list[RouteConfig] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)
    error: Optional[str] = None

    def virtual_services_to(self, fqdn: str) -> set[str]:
        """`name.namespace` of the VirtualServices behind this proxy's routes to `fqdn`: a
        route in a virtual host for the service, or one sending to one of its clusters."""
        found: set[str] = set()
        for config in self.routes:
            for vh in config.virtual_hosts:
                for_service = any(_SERVICE_DOMAIN.match(d) and d.split(":")[0] == fqdn
                                  for d in vh.domains)
                for route in vh.routes:
                    if not route.virtual_service:
                        continue
                    if for_service or any(ClusterName.parse(c).fqdn == fqdn
                                          for c in route.action.clusters):
                        found.add(route.virtual_service)
        return found

    def destination_rule_of(self, fqdn: str, port: int) -> Optional[str]:
        """The `name.namespace` of the DestinationRule on cluster `outbound|port||fqdn`: ""
        when the cluster has none, None when the proxy has no such cluster."""
        want = f"outbound|{port}||{fqdn}"
        for cluster in self.clusters:
            if cluster.name == want:
                return cluster.destination_rule
        return None


def read(session, pod) -> ProxyConfig:
    """The clusters and routes of `pod`'s Envoy (two masked /config_dump requests, as Envoy
    applies one mask to every section); an unreachable proxy is an `error`, not a failure."""
    from kubectl_mesh.configdump import ConfigDump
    from kubectl_mesh.errors import MeshError

    try:
        with session.admin(pod) as admin:
            clusters = ConfigDump(admin.config_dump(mask=CLUSTER_MASK), pod.ref).clusters
            routes = ConfigDump(admin.config_dump(mask=ROUTE_MASK), pod.ref).routes
    except MeshError as e:
        return ProxyConfig(pod.ref, error=str(e))
    return ProxyConfig(pod.ref, routes=routes, clusters=clusters)


def check_destination_rule(proxy: ProxyConfig, expected: Optional[str], shown: str, fqdn: str,
                           ports: list[int], exists) -> list[str]:
    """Warnings when `proxy`'s clusters for `fqdn` do not carry the DestinationRule
    `expected` (`name.namespace`, None: none applies; `shown` is how the text names it);
    `exists(ref)` tells whether the cluster has an object the proxy names."""
    warnings: list[str] = []
    if proxy.error is not None:
        return warnings
    for port in ports:
        cluster = f"outbound|{port}||{fqdn}"
        carried = proxy.destination_rule_of(fqdn, port)
        if carried is None:
            if expected is not None:
                warnings.append(f"WARNING: proxy {proxy.ref} has no cluster {cluster} (not "
                                f"pushed yet, or hidden by a Sidecar)")
            continue
        if carried and carried != "<unknown>" and not exists(carried):
            warnings.append(f"WARNING: Proxy is stale; it references to non-existent destination "
                            f"rule {carried}")
        elif expected is not None and carried != expected:
            if carried:
                warnings.append(f"WARNING: proxy {proxy.ref} applies DestinationRule {carried} "
                                f"to {cluster}, not {shown} ({_next_step(proxy)})")
            else:
                warnings.append(f"WARNING: proxy {proxy.ref} does not carry DestinationRule "
                                f"{shown}: its cluster {cluster} has none ({_next_step(proxy)})")
    return warnings


def check_virtual_services(proxy: ProxyConfig, expected: list[str], fqdn: str,
                           exists) -> tuple[set[str], list[str]]:
    """(the expected VirtualServices the proxy lacks, warnings about stale ones it has)."""
    if proxy.error is not None:
        return set(), []
    carried = proxy.virtual_services_to(fqdn)
    missing = {name for name in expected if name not in carried}
    warnings = [f"WARNING: Proxy is stale; it references to non-existent virtual service {name}"
                for name in sorted(carried) if name != "<unknown>"
                and not exists(name)]
    return missing, warnings


def clusters_missing(proxy: ProxyConfig, virtual_service: str, fqdn: str) -> list[str]:
    """The clusters of `fqdn` that `virtual_service`'s routes in this proxy send to and the
    proxy does not have: traffic there gets 503 NC (no cluster), e.g. a subset no
    DestinationRule defines."""
    if proxy.error is not None:
        return []
    have = {c.name for c in proxy.clusters}
    wanted: list[str] = []
    for config in proxy.routes:
        for vh in config.virtual_hosts:
            for route in vh.routes:
                if route.virtual_service != virtual_service:
                    continue
                for name in route.action.clusters:
                    if ClusterName.parse(name).fqdn == fqdn and name not in have \
                            and name not in wanted:
                        wanted.append(name)
    return wanted


def not_carried(proxy: ProxyConfig, what: str) -> str:
    return f"WARNING: proxy {proxy.ref} does not carry {what} ({_next_step(proxy)})"


def no_cluster(proxy: ProxyConfig, cluster: str) -> str:
    return (f"WARNING: proxy {proxy.ref} routes to cluster {cluster}, which it does not have "
            "(503 NC)")


def _next_step(proxy: ProxyConfig) -> str:
    return f"not pushed yet, or rejected: kubectl mesh sync {proxy.ref}"
