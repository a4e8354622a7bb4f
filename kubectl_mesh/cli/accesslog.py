"""`kubectl mesh accesslog TARGET`: the requests a proxy logged, filtered, explained, grouped.

Reads the `istio-proxy` container's log of every ready pod of the target through the logs
API, parses Istio's access-log lines (TEXT or JSON; Envoy's own lines are skipped), keeps the
requests that match the filters and prints them merged by time – or, with `--by`, one row
per upstream pod / cluster / flag / code / route, or, with `-f`, row by row as they come.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import IO

from kubectl_mesh.cli import common

GROUP_KEYS = ("upstream", "cluster", "flag", "code", "route")  # = accesslog.GROUP_KEYS
OUTPUTS = ("short", "wide", "json", "yaml")

EPILOG = """\
examples:
  kubectl mesh accesslog deploy/istio-ingressgateway -n istio-system --since 10m
  kubectl mesh accesslog deploy/istio-ingressgateway -n istio-system --flags UT --code 5xx
  kubectl mesh accesslog deploy/istio-ingressgateway -n istio-system --by upstream
  kubectl mesh accesslog deploy/catalog -n istioinaction -f --slower-than 500ms
  kubectl mesh accesslog --explain UT,UH
  kubectl logs POD -c istio-proxy | kubectl mesh accesslog --file -

filters (all must hold): --flags any of the flags (short or long names); --code 5xx, 504,
4xx,503 or 0 (no response); --slower-than: duration strictly greater; --host: substring of
the authority, or a glob with * ? [; --path: path prefix. --since and --tail are applied by
the API server to each pod's log (--tail counts log lines, Envoy's own lines included).

follow (-f): rows appear as the proxies log them (after a 0.3 s window that puts pods'
lines in time order); -o json then prints one JSON object per line, -o yaml one document
per request. On a workload (or -l) it also follows the pods that start later and lets go
of deleted ones, saying so on stderr. Ctrl-C ends it (exit 130). --by needs the whole log,
so not with -f.

exit codes: 0 ok (also when nothing matched), 2 bad flags, 3 target not found or without
istio-proxy, 4 RBAC denied, 5 API server unreachable, 6 --strict and some lines could not be
parsed (without --strict they are counted on stderr and skipped), 130 Ctrl-C.

RBAC: get pods/log; get/list pods (and the workload) to resolve the target; -f on a
workload: watch pods; --by upstream also lists pods with a fieldSelector on status.podIP
(cluster-wide, else in the namespace of the upstream service)."""


@dataclass(frozen=True)
class AccessLogOptions:
    """Everything the command needs, typed; the core never sees argparse."""

    target: str | None
    selector: str | None
    file: str | None
    query: object  # accesslog.source.LogQuery
    record_filter: object  # accesslog.RecordFilter
    by: str | None
    output: str
    strict: bool
    concurrency: int
    cluster: common.ClusterOptions


def _tail(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -2
    if value < -1:
        raise argparse.ArgumentTypeError(f"invalid --tail {text!r} (a whole number >= 0; "
                                         "-1 = all)")
    return value


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = common.command_parser(prog, "Show the requests a proxy logged: filter them, explain "
                                    "response flags, group them by upstream pod.",
                              epilog=EPILOG)
    p.add_argument("target", nargs="?",
                   help="pod or workload: NAME[.NS], pod/, deploy/, sts/, ds/, rs/, svc/NAME[.NS]")
    p.add_argument("-l", "--selector", help="label selector instead of a target")
    p.add_argument("--file", metavar="PATH",
                   help="read an istio-proxy log from a file ('-' = stdin) instead of pods")
    g = p.add_argument_group("which log lines")
    g.add_argument("--since", type=common.parse_duration, metavar="DURATION",
                   help="only lines newer than this, e.g. 10m, 1h")
    g.add_argument("--tail", type=_tail, metavar="N",
                   help="only the last N lines of each pod's log")
    g.add_argument("-f", "--follow", action="store_true",
                   help="keep reading: print requests as the proxies log them")
    g = p.add_argument_group("which requests")
    g.add_argument("--flags", metavar="FLAGS", help="response flags, any of, e.g. UT,UH")
    g.add_argument("--code", metavar="CODES", help="response codes, e.g. 5xx, 504, 4xx,503")
    g.add_argument("--slower-than", metavar="DURATION", help="duration above, e.g. 500ms, 2s")
    g.add_argument("--host", help="authority contains (or glob-matches) this")
    g.add_argument("--path", help="path starts with this")
    g = p.add_argument_group("what to show")
    g.add_argument("--by", choices=GROUP_KEYS,
                   help="one row per upstream pod|cluster|flag|code|route: count, errors, "
                        "p50/p99 duration")
    g.add_argument("--explain", nargs="?", const="", metavar="FLAGS",
                   help="explain response flags in words (all when none given); no target")
    g.add_argument("--strict", action="store_true",
                   help="fail (exit 6) when some log lines could not be parsed, and show them")
    common.add_cluster_flags(p)
    common.add_output_flag(p, choices=OUTPUTS)
    common.add_concurrency_flag(p)
    return p


def options_from_args(args: argparse.Namespace, prog: str) -> AccessLogOptions:
    """Validate the flags (before any cluster access) into AccessLogOptions."""
    from kubectl_mesh.accesslog import RecordFilter
    from kubectl_mesh.accesslog.source import LogQuery
    from kubectl_mesh.errors import UsageError
    if args.file and (args.target or args.selector):
        raise UsageError("give a target or --file, not both")
    if not args.file and not (args.target or args.selector):
        raise UsageError("a target or --file is required",
                         hint=f"e.g. {prog} deploy/istio-ingressgateway -n istio-system")
    if args.by and args.follow:
        raise UsageError("--by summarises a whole log; it cannot follow one (drop -f, or use "
                         "--since)")
    flags = _known_flags(args.flags) if args.flags is not None else None
    record_filter = RecordFilter.from_options(flags=flags, code=args.code,
                                              slower_than=args.slower_than, host=args.host,
                                              path=args.path)
    tail = None if args.tail is None or args.tail < 0 else args.tail
    return AccessLogOptions(
        target=args.target, selector=args.selector, file=args.file,
        query=LogQuery(since_seconds=args.since, tail_lines=tail, follow=args.follow),
        record_filter=record_filter, by=args.by, output=args.output, strict=args.strict,
        concurrency=args.concurrency, cluster=common.cluster_options(args))


def _known_flags(text: str) -> list[str]:
    """The flags of `--flags`/`--explain`, each a known short or long name; UsageError else."""
    from kubectl_mesh.accesslog import FLAGS, normalize
    from kubectl_mesh.errors import UsageError
    names = [f.strip() for f in text.replace("|", ",").split(",") if f.strip()]
    unknown = [f for f in names if normalize(f) not in FLAGS]
    if unknown:
        raise UsageError(f"unknown response flag {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(FLAGS)} (or their long names, e.g. UpstreamRequestTimeout)")
    if not names:
        raise UsageError("--flags names no response flag")
    return names


# ---- --explain ------------------------------------------------------------------------------


def _explain(text: str, fmt: str, stdout: IO[str]) -> int:
    from kubectl_mesh import output
    from kubectl_mesh.accesslog import FLAGS, lookup
    from kubectl_mesh.accesslog.flaglegend import legend_lines
    names = _known_flags(text) if text.strip() else list(FLAGS)
    if fmt in ("json", "yaml"):
        data = [{"flag": f.short, "long": f.long, "meaning": f.meaning, "decidedBy": f.side,
                 "explanation": f.why} for f in (lookup(n) for n in names)]
        output.write(stdout, fmt, data=data)
    else:
        stdout.write("".join(line + "\n" for line in legend_lines(names)))
    return 0


# ---- the command ------------------------------------------------------------------------------


def _main(argv, *, prog, stdout, stderr):
    args = build_parser(prog).parse_args(argv)
    if args.explain is not None:
        from kubectl_mesh.errors import UsageError
        if args.target or args.selector or args.file:
            raise UsageError("--explain takes no target: it only explains flags")
        return _explain(args.explain, args.output, stdout)
    opts = options_from_args(args, prog)
    from kubectl_mesh.accesslog.podlogs import show
    return show(opts, stdout, stderr)


def main(argv=None, stdout=None, stderr=None) -> int:
    return common.run(_main, argv, prog=common.prog_name("accesslog"), stdout=stdout,
                      stderr=stderr)
