"""`kubectl mesh admin TARGET PATH [--allow-write] [--all-pods]`."""

from __future__ import annotations

import argparse

from kubectl_mesh.cli import common

EPILOG = """\
examples:
  kubectl mesh admin deploy/catalog -n istioinaction /server_info
  kubectl mesh admin deploy/catalog -n istioinaction '/config_dump?resource=dynamic_active_clusters'
  kubectl mesh admin deploy/catalog -n istioinaction '/stats?filter=^cluster\\.outbound'
  kubectl mesh admin deploy/catalog-v2 -n istioinaction /clusters --all-pods
  kubectl mesh admin catalog-7d9f.istioinaction /healthcheck/fail --allow-write

The answer goes to stdout as Envoy sends it, streamed; on a terminal JSON is indented.
A workload means one of its pods (said on stderr); --all-pods asks each, under a
`==> pod.namespace <==` header.

Endpoints that change the proxy (/quitquitquit, /healthcheck/fail, /healthcheck/ok,
/drain_listeners, /logging, /reset_counters, /runtime_modify, /cpuprofiler, /heapprofiler,
/reopen_logs, /stats/recentlookups/*) need --allow-write and are POSTed; on a workload of
several pods they need --all-pods too. What is sent is said on stderr first.

Envoy answering other than 200: exit 3 for 404 (no such endpoint or resource), 2 for 400
and 405 (a bad parameter, or a change without --allow-write), 5 otherwise.
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = common.command_parser(prog, "Call a proxy's Envoy admin API and print the answer.",
                              epilog=EPILOG)
    p.add_argument("target", nargs="?",
                   help="pod or workload: NAME[.NS], pod/, deploy/, sts/, ds/, rs/, svc/NAME[.NS]")
    p.add_argument("path", nargs="?", metavar="PATH",
                   help="admin path and query, e.g. /clusters or '/stats?filter=http'")
    p.add_argument("-l", "--selector", help="label selector instead of a target")
    p.add_argument("--allow-write", action="store_true",
                   help="allow an endpoint that changes the proxy (POSTed)")
    p.add_argument("--all-pods", action="store_true",
                   help="for a workload: every pod, each under a header")
    common.add_cluster_flags(p)
    return p


def _main(argv, *, prog, stdout, stderr) -> int:
    from kubectl_mesh.adminapi.command import run
    from kubectl_mesh.adminapi.endpoints import AdminPath
    from kubectl_mesh.adminapi.options import AdminOptions
    from kubectl_mesh.errors import UsageError

    # intermixed: `deploy/x -n ns /stats` puts a flag between the two positionals
    args = build_parser(prog).parse_intermixed_args(argv)
    target, path = args.target, args.path
    if args.selector and path is None:  # `-l app=x /stats`: the one positional is the path
        target, path = None, target
    if path is None:
        raise UsageError("a target and an admin PATH are required",
                         hint=f"e.g. {prog} deploy/catalog -n istioinaction /server_info")
    opts = AdminOptions(cluster=common.cluster_options(args), path=AdminPath.parse(path),
                        target=target, selector=args.selector,
                        allow_write=args.allow_write, all_pods=args.all_pods)
    return run(opts, stdout, stderr)


def main(argv=None, stdout=None, stderr=None) -> int:
    return common.run(_main, argv, prog=common.prog_name("admin"), stdout=stdout,
                      stderr=stderr)
