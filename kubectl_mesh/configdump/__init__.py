"""Envoy config dumps → plain frozen objects, and istioctl-style table builders.

Typical use (a command module):

    dump = read_dump(args.file)                     # or ConfigDump(admin.config_dump(...), pod)
    table = cluster_table(dump.clusters, ClusterFilter(port=80), wide=fmt == "wide")
    output.write(stdout, fmt, headers=table.headers, rows=table.rows, data=table.data,
                 gap=table.gap)
"""

from kubectl_mesh.configdump.clusters import Cluster, ClusterFilter, ClusterName, cluster_table
from kubectl_mesh.configdump.common import Table
from kubectl_mesh.configdump.dump import SECTION_TYPES, Bootstrap, ConfigDump
from kubectl_mesh.configdump.endpoints import Endpoint, EndpointFilter, endpoint_table
from kubectl_mesh.configdump.listeners import (
    LISTENER_TYPES, ChainMatch, Destination, FilterChain, Listener, ListenerFilter,
    listener_table,
)
from kubectl_mesh.configdump.load import load_dump, parse_document, read_dump
from kubectl_mesh.configdump.routes import (
    RetryPolicy, Route, RouteAction, RouteConfig, RouteFilter, RouteMatch, VirtualHost,
    route_table,
)
from kubectl_mesh.configdump.secrets import CertInfo, Secret, secret_table

__all__ = [
    "Bootstrap", "CertInfo", "ChainMatch", "Cluster", "ClusterFilter", "ClusterName", "ConfigDump",
    "Destination", "Endpoint", "EndpointFilter", "FilterChain", "LISTENER_TYPES", "Listener",
    "ListenerFilter", "RetryPolicy", "Route", "RouteAction", "RouteConfig", "RouteFilter",
    "RouteMatch", "SECTION_TYPES", "Secret", "Table", "VirtualHost", "cluster_table",
    "endpoint_table", "listener_table", "load_dump", "parse_document", "read_dump",
    "route_table", "secret_table",
]
