"""Envoy config dumps → plain frozen objects, and istioctl-style table builders.

Typical use (a command module):

    dump = read_dump(args.file)                     # or ConfigDump(admin.config_dump(...), pod)
    table = cluster_table(dump.clusters, ClusterFilter(port=80), wide=fmt == "wide")
    output.write(stdout, fmt, headers=table.headers, rows=table.rows, data=table.data,
                 gap=table.gap)
"""

# Each name from its module, imported on first use (PEP 562): a command loads the models of its
# own table only (`routes` does not import the listener, cluster and secret models: ~10 ms of
# its start-up).
_MODULES = {
    "clusters": ("Cluster", "ClusterFilter", "ClusterName", "cluster_table"),
    "common": ("Table",),
    "dump": ("SECTION_TYPES", "Bootstrap", "ConfigDump"),
    "endpoints": ("Endpoint", "EndpointFilter", "endpoint_table"),
    "listeners": ("LISTENER_TYPES", "ChainMatch", "Destination", "FilterChain", "Listener",
                  "ListenerFilter", "listener_table"),
    "load": ("load_dump", "parse_document", "read_dump"),
    "routes": ("RetryPolicy", "Route", "RouteAction", "RouteConfig", "RouteFilter", "RouteMatch",
               "VirtualHost", "route_table"),
    "secrets": ("CertInfo", "Secret", "secret_table"),
}
_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_MODULE_OF))


__all__ = sorted(_MODULE_OF)
