"""`kubectl mesh clusters TARGET`: the proxy's clusters, as `istioctl proxy-config cluster`."""

from __future__ import annotations

from kubectl_mesh.cli import proxyconfig


def _flags(p) -> None:
    p.add_argument("--fqdn", default="", help="only clusters whose name contains this FQDN")
    p.add_argument("--port", type=int, default=0, help="only clusters for this port")
    p.add_argument("--subset", default="", help="only clusters for this subset")
    p.add_argument("--direction", default="", help="only inbound or outbound clusters")


def build_parser(prog: str):
    return proxyconfig.build_parser(prog, "Show a proxy's clusters (upstream services).", _flags)


def view_of(args):
    from kubectl_mesh.configdump import ClusterFilter
    from kubectl_mesh.proxyconfig.views import ClustersView
    return ClustersView(ClusterFilter(fqdn=args.fqdn, port=args.port, subset=args.subset,
                                      direction=args.direction))


main = proxyconfig.main_for("clusters", build_parser, view_of)
