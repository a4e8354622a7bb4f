"""`kubectl mesh analyze`: read the cluster and/or files, run the analyzers, write istioctl's
messages, exit by the failure threshold."""

from __future__ import annotations

from typing import IO, Optional

from kubectl_mesh.analyze import files as file_source
from kubectl_mesh.analyze import meshconfig
from kubectl_mesh.analyze.analyzers import Analyzer, all_analyzers, run_all
from kubectl_mesh.analyze.messages import CODES, Message
from kubectl_mesh.analyze.options import AnalyzeOptions
from kubectl_mesh.analyze.resources import CLUSTER_KINDS, Store
from kubectl_mesh.analyze.suppress import keep
from kubectl_mesh.errors import ExitCode, NotFoundError


def run(options: AnalyzeOptions, stdout: IO[str], stderr: IO[str],
        stdin: Optional[IO[str]] = None) -> int:
    if options.list_analyzers:
        for analyzer in all_analyzers():
            stdout.write(f"* {analyzer.name}\n")
        return ExitCode.OK

    def warn(line: str) -> None:
        print(line, file=stderr, flush=True)

    for s in options.suppressions:
        if s.code not in CODES:
            warn(f"warning: --suppress {s.code}={s.resource}: {s.code} is not a message code "
                 f"analyze reports; it has no effect")
    if options.use_kube:
        from kubectl_mesh.session import Session

        with Session.open(options.cluster, stderr=stderr) as session:
            return _run(options, stdout, stdin, warn, session)
    return _run(options, stdout, stdin, warn, None)


def _run(options: AnalyzeOptions, stdout: IO[str], stdin: Optional[IO[str]], warn,
         session) -> int:
    paths = file_source.gather(options.files, options.recursive)
    store = Store()
    if options.mesh_config_file is not None:
        store.mesh = meshconfig.from_file(options.mesh_config_file)
    unavailable: set[str] = set()
    if options.use_kube:
        namespace = _read_cluster(options, session, store, unavailable, warn)
    else:
        namespace = options.cluster.namespace or "default"
        unavailable |= CLUSTER_KINDS
    selected = None if options.cluster.all_namespaces else namespace
    from_files = file_source.read(paths, namespace, stdin=stdin, warn=warn,
                                  skip_kinds=frozenset(unavailable))
    store.extend(from_files)
    if options.use_kube and selected is not None and "Namespace" not in unavailable \
            and store.get("Namespace", "", selected) is None \
            and not any(r.namespace == selected for r in from_files):
        raise NotFoundError(f"namespace {selected!r} not found in the cluster nor in the files",
                            hint="check -n, or the context's namespace")

    analyzers = [a for a in all_analyzers() if not (a.inputs & unavailable)]
    messages = analyze(store, analyzers, selected)
    if options.live:
        from kubectl_mesh.analyze import live

        found = live.analyze(session, store, selected, options.istio_namespace,
                             options.revision, warn)
        messages = sorted({str(m): m for m in messages + found}.values(), key=Message.sort_key)
    messages = keep(messages, options.suppressions)
    shown = [m for m in messages if m.type.level <= options.output_threshold]
    _write(shown, options.output, stdout)
    target = "all namespaces" if selected is None else f"namespace: {selected}"
    if not shown:
        if paths:
            names = [("stdin" if p == "-" else p) for p in paths]
            if len(names) > 1:
                warn("\u2714 No validation issues found when analyzing:\n  - " + "\n  - ".join(names))
            else:
                warn(f"\u2714 No validation issues found when analyzing {names[0]}.")
        else:
            warn(f"\u2714 No validation issues found when analyzing {target}.")
    if any(m.type.level <= options.failure_threshold for m in messages):
        warn(f"error: analyzers found issues when analyzing {target} (see "
             f"https://istio.io/latest/docs/reference/config/analysis for causes and fixes)")
        return ExitCode.FINDINGS
    return ExitCode.OK


def analyze(store: Store, analyzers: list[Analyzer], namespace: Optional[str]) -> list[Message]:
    """The messages of `analyzers` on `store`, sorted and de-duplicated as istioctl's
    (diag.Messages.SortedDedupedCopy), about objects of `namespace` (None: all). A Namespace
    object counts as in the namespace it names; a message about a cluster-scoped object (a
    webhook configuration) is kept whatever the namespace, as istioctl keeps it
    (pkg/config/analysis/local/istiod_analyze.go `filterMessages`)."""
    seen: dict[str, Message] = {}
    for message in run_all(store, analyzers):
        res = message.resource
        if namespace is not None and res is not None:
            where = res.name if res.kind == "Namespace" else res.namespace
            if where and where != namespace:
                continue
        seen.setdefault(str(message), message)
    return sorted(seen.values(), key=Message.sort_key)


def _read_cluster(options: AnalyzeOptions, session, store: Store, unavailable: set,
                  warn) -> str:
    from kubectl_mesh.analyze import cluster

    namespace = session.namespace or "default"
    found = cluster.read(session.api, warn)
    if options.mesh_config_file is None:
        store.mesh = meshconfig.from_cluster(session.api, options.istio_namespace,
                                             options.revision, warn)
    store.extend(found.resources)
    unavailable |= found.refused
    store.extend(cluster.injector_config_maps(session.api, options.istio_namespace, warn))
    return namespace


def _write(messages: list[Message], fmt: str, stdout: IO[str]) -> None:
    from kubectl_mesh import output

    if fmt in ("json", "yaml"):
        output.write(stdout, fmt, data=[m.as_dict() for m in messages])
    elif messages:
        stdout.write("".join(f"{m}\n" for m in messages))
