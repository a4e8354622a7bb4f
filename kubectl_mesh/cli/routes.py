"""`kubectl mesh routes TARGET`: the proxy's route configs, virtual hosts and matches."""

from __future__ import annotations

from kubectl_mesh.cli import proxyconfig


def _flags(p) -> None:
    p.add_argument("--name", default="", help="only the route configuration with this exact name")
    p.add_argument("--summary", action="store_true",
                   help="one row per route configuration (NAME VIRTUAL HOSTS)")


def _table(dump, args, fmt):
    from kubectl_mesh.configdump import RouteFilter, route_table
    return route_table(dump.routes, RouteFilter(name=args.name), verbose=not args.summary,
                       wide=fmt == "wide")


RESOURCE = proxyconfig.Resource("routes", "Show a proxy's routes: virtual hosts, matches and "
                                "destinations.", _flags, _table)


def build_parser(prog: str):
    return proxyconfig.build_parser(RESOURCE, prog)


main = proxyconfig.main_for(RESOURCE)
