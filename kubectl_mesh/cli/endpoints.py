"""`kubectl mesh endpoints TARGET`: the proxy's endpoints with health (`/clusters?format=json`)."""

from __future__ import annotations

from kubectl_mesh.cli import proxyconfig


def _flags(p) -> None:
    p.add_argument("--address", default="", help="only endpoints with this IP")
    p.add_argument("--port", type=int, default=0, help="only endpoints on this port")
    p.add_argument("--cluster", default="", help="only endpoints of this cluster")
    p.add_argument("--status", default="", help="only endpoints with this health status, e.g. HEALTHY")


def _table(dump, args, fmt):
    from kubectl_mesh.configdump import EndpointFilter, endpoint_table
    from kubectl_mesh.configdump.endpoints import eds_table
    flt = EndpointFilter(address=args.address, port=args.port, cluster=args.cluster,
                         status=args.status)
    # A config dump's EDS section has no outlier state: istioctl's table of it instead.
    table = endpoint_table if dump.kind == "clusters_status" else eds_table
    return table(dump.endpoints, flt, wide=fmt == "wide")


RESOURCE = proxyconfig.Resource(
    "endpoints", "Show a proxy's endpoints and their health.", _flags, _table,
    fetch=lambda admin, while_waiting: admin.clusters(while_waiting=while_waiting),
    epilog="--file takes Envoy's /clusters?format=json (the live table) or a config dump with "
           "its EDS section (/config_dump?include_eds: istioctl's NAME STATUS LOCALITY CLUSTER).")


def build_parser(prog: str):
    return proxyconfig.build_parser(RESOURCE, prog)


main = proxyconfig.main_for(RESOURCE)
