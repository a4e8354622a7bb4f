"""Objects → Envoy resources for one proxy, as proto-JSON dicts keyed by xDS type URL.

Ways to make a real Envoy NACK from plain objects (for tests of ERROR sync states):
- two VirtualServices binding the same host to the same gateway port → duplicate domains in
  `http.<port>` → RDS NACK "Only unique values for domains are permitted ...";
- annotation `sandbox.kubectl-mesh.io/invalid: "true"` on a DestinationRule → its clusters get
  `connect_timeout: 0s` → CDS NACK "... ConnectTimeout: value must be greater than 0s".
"""

from __future__ import annotations

from sandbox.istiod.clusters import CLUSTER_TYPE, clusters_for, load_assignments_for
from sandbox.istiod.listeners import LISTENER_TYPE, listeners_for
from sandbox.istiod.mesh import Mesh
from sandbox.istiod.proxy import Proxy
from sandbox.istiod.routes import ROUTE_TYPE, route_configs_for

ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
EXTENSION_CONFIG_TYPE = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"

# Istio pushes in this order so that clusters exist before endpoints/listeners refer to them.
PUSH_ORDER = (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE)
# Types whose resources Envoy names explicitly (SotW: the response holds only those).
NAMED_TYPES = (ENDPOINT_TYPE, ROUTE_TYPE)
SHORT_NAMES = {CLUSTER_TYPE: "CDS", ENDPOINT_TYPE: "EDS", LISTENER_TYPE: "LDS",
               ROUTE_TYPE: "RDS", EXTENSION_CONFIG_TYPE: "ECDS"}


def resource_name(type_url: str, resource: dict) -> str:
    if type_url == ENDPOINT_TYPE:
        return resource["cluster_name"]
    return resource["name"]


def generate(mesh: Mesh, proxy: Proxy, type_url: str) -> list[dict]:
    """All resources of `type_url` istiod would send `proxy` (before subscription filtering)."""
    if type_url == CLUSTER_TYPE:
        return clusters_for(mesh, proxy)
    if type_url == ENDPOINT_TYPE:
        return load_assignments_for(mesh, proxy)
    if type_url == LISTENER_TYPE:
        return listeners_for(mesh, proxy)
    if type_url == ROUTE_TYPE:
        return route_configs_for(mesh, proxy)
    return []


def for_subscription(mesh: Mesh, proxy: Proxy, type_url: str, names: list[str]) -> list[dict]:
    """The SotW response content for a subscription to `names` (empty = wildcard)."""
    resources = generate(mesh, proxy, type_url)
    if type_url not in NAMED_TYPES or not names:
        return resources
    by_name = {resource_name(type_url, r): r for r in resources}
    result = []
    for name in names:
        if name in by_name:
            result.append(by_name[name])
        elif type_url == ROUTE_TYPE:
            # An unknown route name would keep the listener warming forever; Istio answers
            # with an empty config for it.
            result.append({"name": name, "validate_clusters": False})
        else:
            # istiod answers every subscribed cluster name, an unknown one with an empty
            # ClusterLoadAssignment (pilot/pkg/xds/eds.go `buildEndpoints`,
            # pilot/pkg/xds/endpoints/endpoint_builder.go `buildEmptyClusterLoadAssignment`)
            result.append({"cluster_name": name})
    return result
