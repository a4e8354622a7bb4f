"""The flags the proxy-config commands (`routes`, `clusters`, `listeners`, `endpoints`,
`secrets`) share – a target or `--file`, `--all-pods`, the cluster flags, `-o` – and their
frozen `ProxyConfigOptions`. Each command module adds its own flags and its table's view
(`kubectl_mesh.proxyconfig.views`); the work is `kubectl_mesh.proxyconfig.command.run`."""

from __future__ import annotations

import argparse
from typing import Callable

from kubectl_mesh.cli import common

TARGET_HELP = "pod or workload: NAME[.NS], pod/, deploy/, sts/, ds/, rs/, svc/NAME[.NS]"


def build_parser(prog: str, summary: str, add_flags: Callable[[argparse.ArgumentParser], None],
                 *, outputs=("short", "wide", "json", "yaml"), epilog: str = "",
                 all_pods: bool = True) -> argparse.ArgumentParser:
    p = common.command_parser(prog, summary, epilog=epilog)
    p.add_argument("target", nargs="?", help=TARGET_HELP)
    p.add_argument("-l", "--selector", help="label selector instead of a target")
    p.add_argument("-f", "--file", metavar="PATH",
                   help="read an Envoy config dump from a file ('-' = stdin) instead of a pod")
    if all_pods:
        p.add_argument("--all-pods", action="store_true",
                       help="for a workload: fetch every replica and report pods whose config "
                            "differs")
    add_flags(p)
    common.add_cluster_flags(p)
    common.add_output_flag(p, choices=outputs)
    common.add_concurrency_flag(p)
    return p


def check_source(args: argparse.Namespace, prog: str, example: str = "") -> None:
    """A target (or -l) or --file, exactly one; UsageError otherwise."""
    from kubectl_mesh.errors import UsageError

    if args.file and (args.target or args.selector):
        raise UsageError("give a target or --file, not both")
    if not args.file and not (args.target or args.selector):
        raise UsageError("a target or --file is required",
                         hint=f"e.g. {prog} deploy/istio-ingressgateway -n istio-system{example}")


def options_from_args(args: argparse.Namespace, view, prog: str):
    """The frozen ProxyConfigOptions of parsed arguments showing `view`."""
    from kubectl_mesh.proxyconfig.options import ProxyConfigOptions

    check_source(args, prog)
    return ProxyConfigOptions(view=view, cluster=common.cluster_options(args),
                              target=args.target, selector=args.selector, file=args.file,
                              all_pods=getattr(args, "all_pods", False), output=args.output,
                              concurrency=args.concurrency)


def main_for(name: str, build: Callable[[str], argparse.ArgumentParser],
             view_of: Callable[[argparse.Namespace], object]) -> Callable:
    """The `main(argv=None, stdout=None, stderr=None) -> int` of a proxy-config command whose
    parser is `build(prog)` and whose view is `view_of(args)`."""
    def _main(argv, *, prog, stdout, stderr):
        from kubectl_mesh.proxyconfig.command import run
        args = build(prog).parse_args(argv)
        return run(options_from_args(args, view_of(args), prog), stdout, stderr)

    def main(argv=None, stdout=None, stderr=None) -> int:
        return common.run(_main, argv, prog=common.prog_name(name), stdout=stdout, stderr=stderr)
    return main


def flagless(name: str, summary: str, view: str, **parser_kwargs):
    """(build_parser, main) of a proxy-config command with no flags of its own, showing the
    `kubectl_mesh.proxyconfig.views` class called `view` (imported on use: `--help` and
    completion stay light)."""
    def build(prog: str) -> argparse.ArgumentParser:
        return build_parser(prog, summary, lambda p: None, **parser_kwargs)

    def view_of(args):
        from kubectl_mesh.proxyconfig import views
        return getattr(views, view)()
    return build, main_for(name, build, view_of)
