"""`kubectl mesh stats TARGET`: a proxy's Envoy stats – the server's (`/stats`, also as
Prometheus text) or its clusters' (`/clusters`) – as `istioctl experimental envoy-stats`."""

from __future__ import annotations

from kubectl_mesh.cli import common, proxyconfig

EPILOG = """\
examples:
  kubectl mesh stats deploy/catalog -n istioinaction --filter 'upstream_rq_'
  kubectl mesh stats deploy/catalog -n istioinaction -o prom
  kubectl mesh stats deploy/istio-ingressgateway -n istio-system --type clusters -o json

-o short prints Envoy's text (`name: value`; for --type clusters `cluster::host::field::value`),
-o prom the Prometheus exposition (--type server only), -o json|yaml Envoy's JSON.
--filter REGEX keeps the stats whose name it matches (Envoy's `filter` parameter), or with
--type clusters the clusters whose name it matches."""


def build_parser(prog: str):
    from kubectl_mesh.stats.options import STATS_OUTPUTS, STATS_TYPES

    p = common.command_parser(prog, "Show a proxy's Envoy stats.", epilog=EPILOG)
    p.add_argument("target", nargs="?", help=proxyconfig.TARGET_HELP)
    p.add_argument("-l", "--selector", help="label selector instead of a target")
    p.add_argument("-t", "--type", dest="kind", choices=STATS_TYPES + ("cluster",),
                   default="server", help="server (default) or clusters")
    p.add_argument("--filter", metavar="REGEX", help="only stats (or clusters) whose name "
                                                     "matches this regular expression")
    common.add_cluster_flags(p)
    common.add_output_flag(p, choices=STATS_OUTPUTS)
    return p


def options_from_args(args, prog: str):
    from kubectl_mesh.errors import UsageError
    from kubectl_mesh.stats.options import StatsOptions

    if args.target and args.selector:
        # istioctl's words (StatsConfigCmd Args)
        raise UsageError("name cannot be provided when the label selector is specified")
    if not (args.target or args.selector):
        raise UsageError("stats requires pod name or label selector",
                         hint=f"e.g. {prog} deploy/catalog -n istioinaction")
    kind = "clusters" if args.kind == "cluster" else args.kind  # istioctl takes both
    return StatsOptions(cluster=common.cluster_options(args), target=args.target,
                        selector=args.selector, kind=kind, output=args.output,
                        filter=args.filter)


def _main(argv, *, prog, stdout, stderr):
    from kubectl_mesh.stats.command import run
    return run(options_from_args(build_parser(prog).parse_args(argv), prog), stdout, stderr)


def main(argv=None, stdout=None, stderr=None) -> int:
    return common.run(_main, argv, prog=common.prog_name("stats"), stdout=stdout, stderr=stderr)
