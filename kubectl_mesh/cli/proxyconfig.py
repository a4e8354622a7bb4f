"""What `routes`, `clusters`, `listeners`, `endpoints` and `secrets` share: a target or
`--file`, fetching only the section the table needs, and `--all-pods` drift comparison.

Each command module declares a `Resource` (its flags, the admin fetch, the table builder).
"""

from __future__ import annotations

import argparse
import difflib
import gc
from dataclasses import dataclass
from typing import IO, Callable

from kubectl_mesh.cli import common

# config_dump ?mask= per section: only these top-level fields of each section come back.
MASKS = {
    "clusters": "static_clusters,dynamic_active_clusters,dynamic_warming_clusters",
    "listeners": "static_listeners,dynamic_listeners",
    "routes": "static_route_configs,dynamic_route_configs",
    "secrets": "static_secrets,dynamic_active_secrets,dynamic_warming_secrets",
}


@dataclass(frozen=True)
class Resource:
    """One proxy-config command."""

    name: str  # "routes"
    summary: str
    add_flags: Callable[[argparse.ArgumentParser], None]
    table: Callable[[object, argparse.Namespace, str], object]  # (dump, args, fmt) -> Table
    # (admin, while_waiting) -> raw JSON; default: the masked dump
    fetch: Callable[[object, Callable[[], object] | None], object] | None = None
    outputs: tuple[str, ...] = ("short", "wide", "json", "yaml")
    epilog: str = ""
    empty: str = ""  # the table's text when it has no rows (istioctl's words), else the header


def build_parser(resource: Resource, prog: str) -> argparse.ArgumentParser:
    p = common.command_parser(prog, resource.summary, epilog=resource.epilog)
    p.add_argument("target", nargs="?",
                   help="pod or workload: NAME[.NS], pod/, deploy/, sts/, ds/, rs/, svc/NAME[.NS]")
    p.add_argument("-l", "--selector", help="label selector instead of a target")
    p.add_argument("-f", "--file", metavar="PATH",
                   help="read an Envoy config dump from a file ('-' = stdin) instead of a pod")
    p.add_argument("--all-pods", action="store_true",
                   help="for a workload: fetch every replica and report pods whose config differs")
    resource.add_flags(p)
    common.add_cluster_flags(p)
    common.add_output_flag(p, choices=resource.outputs)
    common.add_concurrency_flag(p)
    return p


def run(resource: Resource, argv, *, prog: str, stdout: IO[str], stderr: IO[str]) -> int:
    from kubectl_mesh.errors import UsageError

    args = build_parser(resource, prog).parse_args(argv)
    if args.file and (args.target or args.selector):
        raise UsageError("give a target or --file, not both")
    if not args.file and not (args.target or args.selector):
        raise UsageError("a target or --file is required",
                         hint=f"e.g. {prog} deploy/istio-ingressgateway -n istio-system")
    # A dump is up to millions of small acyclic objects: the cyclic collector would walk them
    # again and again while json.loads and the parsers build them (~20 ms of ~100 at 5000
    # virtual hosts); reference counting frees them all the same.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _show(resource, args, stdout, stderr)
    finally:
        if collecting:
            gc.enable()


def _show(resource: Resource, args, stdout: IO[str], stderr: IO[str]) -> int:
    from kubectl_mesh import output
    from kubectl_mesh.errors import FindingsError

    from kubectl_mesh.configdump.shape import reading

    if args.file:
        from kubectl_mesh.configdump import read_dump
        dumps = [(args.file, "", read_dump(args.file))]
    else:
        dumps = fetch_dumps(resource, args, stderr)
    fmt = args.output
    # Rows are compared across replicas with the replicas' own IPs masked: a pod's inbound
    # endpoint is its own IP, its peers' are the others'; anything else that differs is drift.
    tables = []
    for ref, _, dump in dumps:
        with reading(ref):
            tables.append((ref, resource.table(dump, args, fmt)))
    ips = {ip for _, ip, _ in dumps if ip}
    ref, first = tables[0]
    with reading(ref):
        if resource.empty and not first.rows and fmt in ("short", "wide"):
            stdout.write(resource.empty + "\n")
        else:
            output.write(stdout, fmt, headers=first.headers, rows=first.rows, data=first.data,
                         gap=first.gap)
    if len(tables) == 1:
        return 0
    baseline = _comparable(first.rows, ips)
    drifted = [(r, t) for r, t in tables[1:] if _comparable(t.rows, ips) != baseline]
    for r, t in drifted:
        diff = difflib.unified_diff(baseline, _comparable(t.rows, ips),
                                    fromfile=ref, tofile=r, lineterm="", n=0)
        stderr.write("\n".join(diff) + "\n")
    if drifted:
        raise FindingsError(f"{len(drifted)} of {len(tables)} pods have different "
                            f"{resource.name} than {ref}: {', '.join(r for r, *_ in drifted)}",
                            hint="a partial push? check with kubectl mesh sync")
    print(f"all {len(tables)} pods have the same {resource.name}", file=stderr)
    return 0


def _comparable(rows, replica_ips: set[str]) -> list[str]:
    import re
    lines = ["  ".join(str(c) for c in row) for row in rows]
    if replica_ips:
        pattern = re.compile(r"(?<![\d.])(" + "|".join(re.escape(ip) for ip in replica_ips) + r")(?![\d])")
        lines = [pattern.sub("<replica-ip>", line) for line in lines]
    return sorted(lines)


def fetch_dumps(resource: Resource, args, stderr) -> list[tuple[str, str, object]]:
    """(pod ref, pod IP, ConfigDump) for the chosen pod, or for every pod with --all-pods."""
    from kubectl_mesh.session import Session, for_each, pick_one

    opts = common.cluster_options(args)
    with Session.open(opts) as session:
        pods = session.proxies(args.target, args.selector, stderr=stderr)
        if not args.all_pods:
            pods = [pick_one(pods, args.target or f"-l {args.selector}", stderr)]

        def fetch(pod, while_waiting=None):
            with session.admin(pod) as admin:
                raw = resource.fetch(admin, while_waiting) if resource.fetch else \
                    admin.config_dump(mask=MASKS[resource.name], while_waiting=while_waiting)
            from kubectl_mesh.configdump import ConfigDump
            return ConfigDump(raw, pod.ref)

        if len(pods) == 1:  # the common case: no threads, rendering prepared during Envoy's work
            results = [(pods[0], fetch(pods[0], _prepare_rendering), None)]
        else:
            results = for_each(pods, fetch, concurrency=args.concurrency, stderr=stderr,
                               while_waiting=_prepare_rendering)
    out = []
    for pod, dump, error in results:
        if error is not None:
            raise error
        out.append((pod.ref, pod.ip, dump))
    return out


def _prepare_rendering() -> None:
    """Import what parsing and rendering need (~90 ms) while Envoy builds its answer: the
    fetch thread waits on the socket then, so these imports are off the critical path."""
    import tabulate  # noqa: F401 - imported for its side effect: loaded ahead of use

    import kubectl_mesh.configdump  # noqa: F401
    import kubectl_mesh.output  # noqa: F401


def main_for(resource: Resource) -> Callable:
    """The `main(argv=None, stdout=None, stderr=None) -> int` of a proxy-config command."""
    def _main(argv, *, prog, stdout, stderr):
        return run(resource, argv, prog=prog, stdout=stdout, stderr=stderr)

    def main(argv=None, stdout=None, stderr=None) -> int:
        return common.run(_main, argv, prog=common.prog_name(resource.name), stdout=stdout,
                          stderr=stderr)
    return main
