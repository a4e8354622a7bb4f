"""The access logs of a target's pods (or of a file): read, filter, merge, write.

`show(options, stdout, stderr)` is the core of `kubectl mesh accesslog`: it resolves the
target to its ready proxy pods, reads each pod's `istio-proxy` log through the logs API
(concurrently), and either collects the matching requests into one time-ordered table /
`--by` summary, or follows the logs row by row (`accesslog.follow`).
"""

from __future__ import annotations

import sys
from typing import IO, Iterable

from kubectl_mesh.accesslog.parser import ParseStats, parse_lines
from kubectl_mesh.errors import BadInputError, NotFoundError

FILE_LABEL = ""  # records read from --file carry no pod name


def show(opts, stdout: IO[str], stderr: IO[str]) -> int:
    """Run the command for `opts` (cli.accesslog.AccessLogOptions); returns the exit code."""
    from kubectl_mesh import output
    output.check_format(opts.output)
    if opts.file:
        opener = _file_lines(opts.file)
        if opts.query.follow:
            return _follow({FILE_LABEL: opener}, opts, stdout, stderr)
        if not opts.by:  # a regular file is read twice instead of held (accesslog.logfile)
            from kubectl_mesh.accesslog.logfile import show_file
            stats = {FILE_LABEL: ParseStats()}
            written = show_file(opts.file, opts, stdout, stats[FILE_LABEL])
            if written is not None:
                if not written:
                    print("no matching requests in the file", file=stderr)
                return _parse_summary(stats, opts.strict, stderr)
        stats = {FILE_LABEL: ParseStats()}
        records = _matching(opener(), opts, stats[FILE_LABEL], None)
        return _report(records, stats, opts, None, None, stdout, stderr)
    from kubectl_mesh.session import Session, ready_pods
    with Session.open(opts.cluster) as session:
        pods = ready_pods(session.proxies(opts.target, opts.selector, stderr=stderr),
                          opts.target or f"-l {opts.selector}", stderr)
        if opts.query.follow:
            return _follow_pods(session, pods, opts, stdout, stderr)
        return _collect_pods(session, pods, opts, stdout, stderr)


# ---- one-shot ---------------------------------------------------------------------------------


def _matching(lines: Iterable, opts, stats: ParseStats, pod: str | None) -> list:
    """The records that pass the filter, in start-time order (a proxy writes a request's line
    when it ends, so a slow request comes after faster ones that started later)."""
    records = [r for r in parse_lines(lines, stats, pod=pod) if opts.record_filter.matches(r)]
    records.sort(key=lambda r: r.start_time)
    return records


def _collect_pods(session, pods: list, opts, stdout, stderr) -> int:
    from kubectl_mesh.accesslog.source import PodLogStream
    from kubectl_mesh.session import for_each
    stats = {p.name: ParseStats() for p in pods}

    def fetch(pod):
        with PodLogStream(session.api, pod.namespace, pod.name, opts.query) as stream:
            return _matching(stream.lines(), opts, stats[pod.name], pod.name)

    results = for_each(pods, fetch, concurrency=opts.concurrency, stderr=stderr, label="logs")
    per_pod = {pod.name: records for pod, records, error in results if error is None}
    errors = [error for _, _, error in results if error is not None]
    if not per_pod:
        raise errors[0]
    for error in errors:  # the other pods' requests are still shown
        print(f"warning: {error}", file=stderr)
    from kubectl_mesh.accesslog import merge_by_time
    merged = list(merge_by_time(per_pod))
    code = _report(merged, {n: stats[n] for n in per_pod}, opts, session, pods, stdout, stderr)
    if errors:  # the output above covers the other pods; the exit code says it is partial
        raise errors[0]
    return code


def _report(records: list, stats: dict, opts, session, pods, stdout, stderr) -> int:
    """Write the requests (or `--by` groups) and the flag legend; then the parse summary."""
    from kubectl_mesh.accesslog import group_records, write_groups, write_requests
    from kubectl_mesh.accesslog.flaglegend import write_legend
    table = opts.output in ("short", "wide")
    where = _where(pods)
    if opts.by:
        pod_of = _pod_namer(session, records, pods, stderr) if opts.by == "upstream" else None
        rows = group_records(records, opts.by, pod_of=pod_of)
        if rows or not table:
            write_groups(stdout, opts.output, opts.by, rows)
        if table:
            write_legend(stdout, (f for r in rows for f, _ in r.flags))
    elif records or not table:
        write_requests(stdout, opts.output, records)
        if table:
            write_legend(stdout, (f for r in records for f in r.response_flags))
    if not records:
        print(f"no matching requests in {where}", file=stderr)
    return _parse_summary(stats, opts.strict, stderr)


def _where(pods) -> str:
    if pods is None:
        return "the file"
    names = ", ".join(p.name for p in pods[:3]) + (", ..." if len(pods) > 3 else "")
    return f"the istio-proxy logs of {len(pods)} pod(s) ({names})"


def _pod_namer(session, records: list, pods, stderr):
    """`pod_of(ip)` for `--by upstream`: the pod name behind an upstream IP (no cluster: none)."""
    if session is None:
        return None
    from kubectl_mesh.accesslog.podnames import PodNames, cluster_namespace
    hints: dict[str, str | None] = {}
    for r in records:  # the namespace each upstream's service lives in, for RBAC fallback
        ip = r.upstream_ip
        if ip and ip not in hints:
            hints[ip] = cluster_namespace(r.upstream_cluster)
    namespace = pods[0].namespace if pods else session.namespace
    names = PodNames(session.api.list_pods, namespace, stderr)
    return lambda ip: names.lookup(ip, hints.get(ip))


def _parse_summary(stats: dict, strict: bool, stderr: IO[str]) -> int:
    """Count the lines that could not be parsed; with --strict, show them and fail (6)."""
    malformed = sum(s.malformed for s in stats.values())
    if not malformed:
        return 0
    lines = sum(s.lines for s in stats.values())
    if not strict:
        print(f"note: {malformed} of {lines} log lines could not be parsed and were skipped "
              "(--strict shows them and fails)", file=stderr)
        return 0
    for pod, s in sorted(stats.items()):
        for number, text in s.malformed_examples:
            print(f"{pod or 'line'}{':' if pod else ' '}{number}: {text}", file=stderr)
    raise BadInputError(f"{malformed} of {lines} log lines could not be parsed",
                        hint="an access-log format this tool does not know, or lines cut short")


# ---- follow -----------------------------------------------------------------------------------


def _follow_pods(session, pods: list, opts, stdout, stderr) -> int:
    """Open every pod's stream first (an RBAC or API error fails before any output), say
    which pods are followed, then follow them all - and, for a workload, the pods that start
    later (`accesslog.workloadpods`)."""
    from kubectl_mesh.accesslog.workloadpods import FollowedPods
    followed = FollowedPods(session, opts, stderr)
    try:
        followed.open(pods)
        print(f"following the istio-proxy logs of {len(pods)} pod(s): "
              f"{', '.join(p.name for p in pods)} (Ctrl-C to stop)", file=stderr, flush=True)
        sources = {name: s.lines for name, s in followed.streams.items()}
        return _follow(sources, opts, stdout, stderr, close=followed.close,
                       watch=followed.watch)
    finally:
        followed.close()


def _follow(sources: dict, opts, stdout, stderr, close=None, watch=None) -> int:
    from kubectl_mesh.accesslog.follow import RowWriter, follow
    stats = {pod: ParseStats() for pod in sources}
    errors: list[BaseException] = []

    def on_end(end) -> None:
        if end.error is not None:
            errors.append(end.error)
            print(f"warning: stopped reading {end.pod or 'the file'}: {end.error}", file=stderr)

    writer = RowWriter(stdout, opts.output, pod_width=max(len(p) for p in sources))
    try:
        follow(sources, opts.record_filter, writer, stats=stats, on_end=on_end, close=close,
               watch=watch)
    except KeyboardInterrupt:
        malformed = sum(s.malformed for s in stats.values())
        if malformed:
            print(f"note: {malformed} log lines could not be parsed", file=stderr)
        raise
    if errors and len(errors) == len(stats):
        raise errors[0]
    if not writer.rows:
        print("no matching requests", file=stderr)
    code = _parse_summary(stats, opts.strict, stderr)
    if errors:
        raise errors[0]
    return code


def _file_lines(path: str):
    """A function opening `path` ('-' = stdin) and yielding its lines as bytes."""
    def lines():
        if path == "-":
            yield from sys.stdin.buffer
            return
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise NotFoundError(f"no such file: {path}") from None
        except OSError as e:
            raise BadInputError(f"cannot read {path}: {e.strerror}") from e
        with f:
            yield from f
    return lines
