"""The core of the proxy-config tables: fetch the section the table needs (one pod, every
replica with `all_pods`, or `--file`), build the table, write it through `output.py`, and with
several replicas report the ones whose rows differ. `run(options, stdout, stderr) -> exit code`.
"""

from __future__ import annotations

import difflib
import gc
from typing import IO

from kubectl_mesh.proxyconfig.options import ProxyConfigOptions
from kubectl_mesh.proxyconfig.views import View


def run(opts: ProxyConfigOptions, stdout: IO[str], stderr: IO[str]) -> int:
    # A dump is up to millions of small acyclic objects: the cyclic collector would walk them
    # again and again while json.loads and the parsers build them (~20 ms of ~100 at 5000
    # virtual hosts); reference counting frees them all the same.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _show(opts, stdout, stderr)
    finally:
        if collecting:
            gc.enable()


def _show(opts: ProxyConfigOptions, stdout: IO[str], stderr: IO[str]) -> int:
    from kubectl_mesh import output
    from kubectl_mesh.configdump.shape import reading
    from kubectl_mesh.errors import FindingsError

    view = opts.view
    if opts.file:
        from kubectl_mesh.configdump import read_dump
        dumps = [(opts.file, "", read_dump(opts.file))]
    else:
        dumps = fetch_dumps(opts, stderr)
    fmt = opts.output
    comparing = opts.all_pods
    # Rows are compared across replicas with the replicas' own IPs masked: a pod's inbound
    # endpoint is its own IP, its peers' are the others'; anything else that differs is drift.
    tables = []  # (source, [(Table, text when empty)]) per dump
    for ref, _, dump in dumps:
        with reading(ref):
            tables.append((ref, view.tables(dump, fmt, comparing)))
    ips = {ip for _, ip, _ in dumps if ip}
    ref, first = tables[0]
    with reading(ref):
        for i, (table, empty) in enumerate(first):
            if i:
                stdout.write("\n")
            if empty and not table.rows and fmt in ("short", "wide"):
                stdout.write(empty + "\n")
            else:
                output.write(stdout, fmt, headers=table.headers, rows=table.rows,
                             data=table.data, gap=table.gap)
    if len(tables) == 1:
        return 0
    baseline = _comparable(first, ips)
    drifted = [(r, t) for r, t in tables[1:] if _comparable(t, ips) != baseline]
    for r, t in drifted:
        diff = difflib.unified_diff(baseline, _comparable(t, ips),
                                    fromfile=ref, tofile=r, lineterm="", n=0)
        stderr.write("\n".join(diff) + "\n")
    if drifted:
        raise FindingsError(f"{len(drifted)} of {len(tables)} pods have different "
                            f"{view.name} than {ref}: {', '.join(r for r, *_ in drifted)}",
                            hint="a partial push? check with kubectl mesh sync")
    print(f"all {len(tables)} pods have the same {view.name}", file=stderr)
    return 0


def _comparable(tables, replica_ips: set[str]) -> list[str]:
    import re
    lines = ["  ".join(str(c) for c in row) for table, _ in tables for row in table.rows]
    if replica_ips:
        pattern = re.compile(r"(?<![\d.])(" + "|".join(re.escape(ip) for ip in replica_ips) + r")(?![\d])")
        lines = [pattern.sub("<replica-ip>", line) for line in lines]
    return sorted(lines)


def fetch_dumps(opts: ProxyConfigOptions, stderr) -> list[tuple[str, str, object]]:
    """(pod ref, pod IP, ConfigDump) for the chosen pod, or for every pod with all_pods."""
    from kubectl_mesh.session import Ahead, Session, for_each, pick_one

    view: View = opts.view
    with Session.open(opts.cluster) as session:

        def fetch_raw(pod, while_waiting=None) -> tuple[dict, list[str]]:
            notes: list[str] = []
            with session.admin(pod) as admin:
                return view.fetch(admin, while_waiting, notes), notes

        def fetch(pod, while_waiting=None):
            return dump_of(pod, *fetch_raw(pod, while_waiting))

        def dump_of(pod, raw: dict, notes: list[str]):
            for note in notes:
                stderr.write(f"warning: {pod.ref}: {note}\n")
            from kubectl_mesh.configdump import ConfigDump
            return ConfigDump(raw, pod.ref)

        # One pod named by NAME[.NAMESPACE]: its port-forward and Envoy's answer start now,
        # beside the pod GET(s) that check it, instead of one round trip after them.
        guess = None if opts.all_pods else session.likely_pod(opts.target, opts.selector)
        ahead = Ahead(fetch_raw, guess) if guess is not None else None
        # Where the target means another pod, or none (the error says why), its work is left
        # to end on its own: a port-forward to no Envoy fails, and closes, by itself.
        pods = session.proxies(opts.target, opts.selector, stderr=stderr)
        if not opts.all_pods:
            pods = [pick_one(pods, opts.target or f"-l {opts.selector}", stderr)]
        if ahead is not None and guess.same_pod(pods[0]):
            prepare_rendering()
            results = [(pods[0], dump_of(pods[0], *ahead.result()), None)]
        else:
            if len(pods) == 1:  # no threads, rendering prepared during Envoy's work
                results = [(pods[0], fetch(pods[0], prepare_rendering), None)]
            else:
                results = for_each(pods, fetch, concurrency=opts.concurrency, stderr=stderr,
                                   while_waiting=prepare_rendering)
    out = []
    for pod, dump, error in results:
        if error is not None:
            raise error
        out.append((pod.ref, pod.ip, dump))
    return out


def prepare_rendering() -> None:
    """Import what parsing and rendering need while Envoy builds its answer: the fetch
    thread waits on the socket then, so these imports are off the critical path (tables
    of plain text need no tabulate: `output.render_table`)."""
    import kubectl_mesh.configdump  # noqa: F401
    import kubectl_mesh.output  # noqa: F401
