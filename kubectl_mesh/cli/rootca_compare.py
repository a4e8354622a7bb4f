"""`kubectl mesh rootca-compare POD1 POD2`: whether two pods' proxies trust the same root CA
(their ROOTCA secrets share a certificate), as `istioctl proxy-config rootca-compare`."""

from __future__ import annotations

from kubectl_mesh.cli import common, proxyconfig

EPILOG = """\
examples:
  kubectl mesh rootca-compare deploy/catalog deploy/istio-ingressgateway.istio-system -n istioinaction
  kubectl mesh rootca-compare -f a-config-dump.json -f b-config-dump.json

exit codes: 0 the same root (istioctl's "identical ROOTCA"); 7 different roots; 3 a pod, a
sidecar or a ROOTCA secret not found; 2 not exactly two pods or files."""


def build_parser(prog: str):
    p = common.command_parser(prog, "Check whether two pods' proxies trust the same root CA.",
                              epilog=EPILOG)
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help=f"two pods or workloads ({proxyconfig.TARGET_HELP})")
    p.add_argument("-f", "--file", dest="files", action="append", default=[], metavar="PATH",
                   help="a saved config dump instead of a pod; give two ('-' = stdin once)")
    common.add_cluster_flags(p)
    return p


def options_from_args(args):
    from kubectl_mesh.errors import UsageError
    from kubectl_mesh.proxyconfig.options import RootCaOptions

    if args.files and args.targets:
        raise UsageError("give two pods or two --file dumps, not both")
    given = args.files or args.targets
    if len(given) != 2:
        # istioctl's words (rootCACompareConfigCmd Args)
        raise UsageError("rootca-compare requires 2 pods as an argument",
                         hint=f"got {len(given)}; e.g. rootca-compare deploy/a deploy/b -n NS")
    return RootCaOptions(cluster=common.cluster_options(args), targets=tuple(args.targets),
                         files=tuple(args.files))


def _main(argv, *, prog, stdout, stderr):
    from kubectl_mesh.proxyconfig.rootca import run
    return run(options_from_args(build_parser(prog).parse_args(argv)), stdout, stderr)


def main(argv=None, stdout=None, stderr=None) -> int:
    return common.run(_main, argv, prog=common.prog_name("rootca-compare"), stdout=stdout,
                      stderr=stderr)
