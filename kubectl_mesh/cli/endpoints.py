"""`kubectl mesh endpoints TARGET`: the proxy's endpoints with health (`/clusters?format=json`)."""

from __future__ import annotations

from kubectl_mesh.cli import proxyconfig

EPILOG = ("--file takes Envoy's /clusters?format=json (the live table) or a config dump with "
          "its EDS section (/config_dump?include_eds: istioctl's NAME STATUS LOCALITY CLUSTER).")


def _flags(p) -> None:
    p.add_argument("--address", default="", help="only endpoints with this IP")
    p.add_argument("--port", type=int, default=0, help="only endpoints on this port")
    p.add_argument("--cluster", default="", help="only endpoints of this cluster")
    p.add_argument("--status", default="", help="only endpoints with this health status, e.g. HEALTHY")


def build_parser(prog: str):
    return proxyconfig.build_parser(prog, "Show a proxy's endpoints and their health.", _flags,
                                    epilog=EPILOG)


def view_of(args):
    from kubectl_mesh.configdump import EndpointFilter
    from kubectl_mesh.proxyconfig.views import EndpointsView
    return EndpointsView(EndpointFilter(address=args.address, port=args.port,
                                        cluster=args.cluster, status=args.status))


main = proxyconfig.main_for("endpoints", build_parser, view_of)
