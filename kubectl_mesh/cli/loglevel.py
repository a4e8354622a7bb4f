"""`kubectl mesh loglevel TARGET [--level SPEC | --reset] [--for DURATION]`."""

from __future__ import annotations

import argparse

from kubectl_mesh.cli import common

EPILOG = """\
examples:
  kubectl mesh loglevel deploy/istio-ingressgateway -n istio-system
  kubectl mesh loglevel deploy/catalog -n istioinaction --level http:debug,router:trace
  kubectl mesh loglevel catalog-7d9f.istioinaction --level debug --for 5m
  kubectl mesh loglevel deploy/catalog -n istioinaction --reset
  kubectl mesh loglevel deploy/catalog -n istioinaction --restore-abandoned

levels: trace, debug, info, warning (warn), error, critical, off.
A workload means every ready pod of it. Changes are validated on every pod first; if one pod
fails, the pods already changed are put back. What changed is printed on stderr.

--for notes the hold on each pod (annotation loglevel.kubectl-mesh.io/hold-ID; RBAC patch
pods, else it warns once and carries on) and at the end puts back only the loggers that
still have the level it set: a logger changed meanwhile is left as it is, and said. Runs
that overlap see each other's notes, so the last one to end goes back to the levels from
before the first. A run killed before restoring leaves its note: listing the target tells
about it, and --restore-abandoned finishes it.
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = common.command_parser(prog, "Show or change a proxy's log levels.", epilog=EPILOG)
    p.add_argument("target", nargs="?",
                   help="pod or workload: NAME[.NS], pod/, deploy/, sts/, ds/, rs/, svc/NAME[.NS]")
    p.add_argument("-l", "--selector", help="label selector instead of a target")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--level", metavar="SPEC",
                      help="LEVEL for every logger, or LOGGER:LEVEL[,LOGGER:LEVEL...] "
                           "(LOGGER=LEVEL works too)")
    what.add_argument("-r", "--reset", action="store_true",
                      help="every logger back to the mesh default (global.proxy.logLevel in "
                           "istio-system/istio-sidecar-injector, else warning)")
    what.add_argument("--restore-abandoned", action="store_true",
                      help="finish the --for runs that were killed before restoring (kill -9, "
                           "a lost machine): put back what still has their levels; listing "
                           "the target tells about such holds")
    p.add_argument("--for", dest="hold_for", type=common.parse_duration, metavar="DURATION",
                   help="keep the change for DURATION (e.g. 30s, 5m), then restore each pod's "
                        "exact previous levels (also on Ctrl-C and SIGTERM)")
    common.add_cluster_flags(p)
    common.add_output_flag(p, ("short", "wide", "json", "yaml"))
    common.add_concurrency_flag(p)
    return p


def _main(argv, *, prog, stdout, stderr) -> int:
    from kubectl_mesh.errors import UsageError
    from kubectl_mesh.loglevel.command import LogLevelOptions, run
    from kubectl_mesh.loglevel.levels import LevelSpec

    args = build_parser(prog).parse_args(argv)
    if not (args.target or args.selector):
        raise UsageError("a target is required",
                         hint=f"e.g. {prog} deploy/istio-ingressgateway -n istio-system")
    changing = args.level is not None or args.reset
    if args.hold_for is not None and not changing:
        raise UsageError("--for needs --level or --reset")
    if args.restore_abandoned and args.output != "short":
        raise UsageError("-o is for listing levels; --restore-abandoned reports on stderr")
    if changing and args.output != "short":
        raise UsageError("-o is for listing levels; changes are reported on stderr")
    opts = LogLevelOptions(
        cluster=common.cluster_options(args),
        target=args.target, selector=args.selector,
        spec=LevelSpec.parse(args.level) if args.level is not None else None,  # before any I/O
        reset=args.reset, restore_abandoned=args.restore_abandoned, hold_for=args.hold_for,
        output=args.output,
        concurrency=args.concurrency,
    )
    return run(opts, stdout, stderr)


def main(argv=None, stdout=None, stderr=None) -> int:
    return common.run(_main, argv, prog=common.prog_name("loglevel"), stdout=stdout,
                      stderr=stderr)
