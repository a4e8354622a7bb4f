"""`kubectl mesh routes TARGET`: the proxy's route configs, virtual hosts and matches;
`--trace URL` walks one request through the proxy's config and says why it fails;
`--check` reports every broken route of the proxy (istioctl analyze on the live config)."""

from __future__ import annotations

from kubectl_mesh.cli import common, proxyconfig

EPILOG = """\
examples:
  kubectl mesh routes deploy/istio-ingressgateway -n istio-system
  kubectl mesh routes deploy/istio-ingressgateway -n istio-system \\
      --trace http://catalog.istioinaction.io/items
  kubectl mesh routes deploy/catalog -n istioinaction --check

--trace exits 0 when the request would reach a healthy endpoint and 7 when it would not;
--check exits 7 when it finds something."""


def _flags(p) -> None:
    p.add_argument("--name", default="", help="only the route configuration with this exact name")
    p.add_argument("--summary", action="store_true",
                   help="one row per route configuration (NAME VIRTUAL HOSTS)")
    p.add_argument("--trace", metavar="URL",
                   help="walk this request through the proxy's config and say what Envoy answers")
    p.add_argument("--header", action="append", default=[], metavar="K:V",
                   help="request header for --trace (repeatable)")
    p.add_argument("--method", default="GET", help="request method for --trace (default: GET)")
    p.add_argument("--check", action="store_true",
                   help="report dangling clusters, clusters without healthy endpoints and "
                        "shadowed routes in the proxy's live config")


def build_parser(prog: str):
    return proxyconfig.build_parser(prog, "Show a proxy's routes: virtual hosts, matches and "
                                    "destinations; trace a request; check the live config.",
                                    _flags, epilog=EPILOG)


def view_of(args):
    from kubectl_mesh.proxyconfig.views import RoutesView
    return RoutesView(route_name=args.name, summary=args.summary)


def walk_options(args, prog: str):
    """The frozen RouteWalkOptions of `--trace URL` or `--check`; UsageError for clashes."""
    from kubectl_mesh.errors import UsageError
    from kubectl_mesh.proxyconfig.options import RouteWalkOptions
    tracing = args.trace is not None  # `--trace ""` is a URL too: a bad one
    if tracing and args.check:
        raise UsageError("give --trace URL or --check, not both")
    if args.all_pods:
        raise UsageError("--all-pods compares tables; --trace and --check look at one pod")
    if args.header and not tracing:
        raise UsageError("--header is for --trace")
    proxyconfig.check_source(args, prog, " --check")
    return RouteWalkOptions(cluster=common.cluster_options(args), target=args.target,
                            selector=args.selector, file=args.file, output=args.output,
                            url=args.trace, headers=tuple(args.header), method=args.method,
                            check=args.check)


def _main(argv, *, prog, stdout, stderr):
    args = build_parser(prog).parse_args(argv)
    if args.trace is not None or args.check:
        from kubectl_mesh.proxyconfig import routewalk
        return routewalk.run(walk_options(args, prog), stdout, stderr)
    if args.header:
        from kubectl_mesh.errors import UsageError
        raise UsageError("--header is for --trace")
    from kubectl_mesh.proxyconfig.command import run
    return run(proxyconfig.options_from_args(args, view_of(args), prog), stdout, stderr)


def main(argv=None, stdout=None, stderr=None) -> int:
    return common.run(_main, argv, prog=common.prog_name("routes"), stdout=stdout, stderr=stderr)
