"""The core of `kubectl mesh sync`: discover istiod, fetch + merge syncz, select, then show,
wait, verify or diff. `run(options, stdout, stderr) -> exit code`; problems found after the
output is written are raised as FindingsError (exit 7)."""

from __future__ import annotations

import concurrent.futures
import json
from datetime import datetime, timezone
from typing import IO, Any

from kubectl_mesh import output
from kubectl_mesh.errors import BadInputError, FindingsError, NotFoundError, UsageError
from kubectl_mesh.sync.options import SyncOptions
from kubectl_mesh.sync.scope import Scope, scope_for
from kubectl_mesh.syncz import (ProxySync, merge_proxies, merge_replicas, not_synced, notes,
                                write_status)


def run(opts: SyncOptions, stdout: IO[str], stderr: IO[str]) -> int:
    output.check_format(opts.output)
    if opts.file:
        return _from_file(opts, stdout, stderr)
    from kubectl_mesh.session import Session
    from kubectl_mesh.sync.istiod import find_istiods
    from kubectl_mesh.sync.reach import open_istiods
    from kubectl_mesh.sync.revisions import resolve_revision

    with Session.open(opts.cluster, stderr=stderr) as session:
        revision = resolve_revision(session.api, opts.revision, stderr)
        reach = opts.reach
        istiod_pods = []
        if not reach.xds_address:
            try:
                istiod_pods = find_istiods(session.api, opts.istio_namespace, revision)
            except NotFoundError as no_pod:
                reach = _external_control_plane(session.api, opts, revision, no_pod, stderr)
        target_pods = _target_pods(session, opts, stderr)
        scope = scope_for(opts.cluster.namespace, opts.cluster.all_namespaces,
                          None if target_pods is None else [p.ref for p in target_pods])
        with open_istiods(session, istiod_pods, reach, opts.istio_namespace, revision,
                          opts.cluster.request_timeout, http_first=opts.verify) as istiods:
            if opts.diff:
                return _diff(session, opts, target_pods, istiods, stdout, stderr)
            missing: list[str] = []
            done = True
            if opts.wait:
                done, proxies, missing = _wait(session, opts, scope, target_pods, istiods, stderr)
            else:
                proxies = _selected(istiods, scope)
            findings = None
            if opts.verify:
                from kubectl_mesh.sync.probe import verify_proxies
                pods = {p.ref: p for p in _pods_in_scope(session, scope, target_pods)}
                findings = verify_proxies(session, proxies, pods,
                                          {i.name: i for i in istiods},
                                          concurrency=opts.concurrency, stderr=stderr)
            elif target_pods is not None:
                listed = {p.name for p in proxies}
                missing = [p.ref for p in target_pods if p.ref not in listed]
    _write(opts, proxies, findings, stdout, stderr)
    if opts.wait and not done:
        from kubectl_mesh.sync.wait import Snapshot
        raise FindingsError(f"timed out after {opts.timeout:g}s waiting for sync: "
                            f"{Snapshot(proxies, missing).summary()}",
                            hint="raise --timeout, or look at the table above")
    _raise_findings(proxies, missing, findings, scope, [i.name for i in istiods], stderr)
    return 0


def _external_control_plane(api, opts: SyncOptions, revision, no_pod: NotFoundError, stderr):
    """No istiod pod: the ReachOptions for the control plane its revision's injection webhook
    points at (a control plane outside the cluster), or `no_pod` is raised."""
    import dataclasses

    from kubectl_mesh.sync.revisions import webhook_xds_address
    found = webhook_xds_address(api, revision)
    if found is None:
        raise no_pod
    hook, address = found
    print(f"no istiod pod in namespace {opts.istio_namespace}: asking the control plane at "
          f"{address}, the injection URL of MutatingWebhookConfiguration {hook}", file=stderr)
    return dataclasses.replace(opts.reach, xds_address=address)


# ---- selection -------------------------------------------------------------------------------


def _target_pods(session, opts: SyncOptions, stderr) -> list | None:
    """The proxy pods TARGET (or -l) means, or None without one."""
    if not (opts.target or opts.selector):
        return None
    return session.proxies(opts.target, opts.selector, stderr=stderr)


def _selected(istiods, scope: Scope) -> list[ProxySync]:
    from kubectl_mesh.sync.reach import fetch_proxies
    return scope.select(merge_proxies(fetch_proxies(istiods)))


def _pods_in_scope(session, scope: Scope, target_pods) -> list:
    if target_pods is not None:
        return list(target_pods)
    from kubectl_mesh.kube.targets import list_proxies
    return list_proxies(session.api, scope.namespace)


def _wait(session, opts, scope, target_pods, istiods, stderr):
    from kubectl_mesh.sync.wait import Snapshot, wait_for_sync

    from kubectl_mesh.errors import UnreachableError
    last: list[Snapshot] = [Snapshot(())]

    def poll() -> Snapshot:
        try:
            proxies = _selected(istiods, scope)
            listed = {p.name for p in proxies}
            pods = _pods_in_scope(session, scope, target_pods)
        except UnreachableError as e:  # a busy istiod or API server: CI waits should ride it out
            return Snapshot(last[0].proxies, last[0].missing, error=str(e))
        last[0] = Snapshot(proxies, tuple(p.ref for p in pods if p.ref not in listed))
        return last[0]

    done, snap = wait_for_sync(poll, timeout=opts.timeout, stderr=stderr)
    if not done and snap.error:
        raise UnreachableError(f"timed out after {opts.timeout:g}s waiting for sync; the last "
                               f"poll failed: {snap.error}")
    return done, list(snap.proxies), list(snap.missing)


# ---- --diff ----------------------------------------------------------------------------------


def _diff(session, opts, target_pods, istiods, stdout, stderr) -> int:
    from kubectl_mesh.session import pick_one
    from kubectl_mesh.sync import diff as sync_diff
    from kubectl_mesh.sync.probe import envoy_dump

    if target_pods is None:
        raise UsageError("--diff compares one proxy: give a TARGET",
                         hint="e.g. kubectl mesh sync deploy/catalog -n istioinaction --diff")
    pod = pick_one(target_pods, opts.target or f"-l {opts.selector}", stderr)
    owner = next((p.istiod for p in _selected(istiods, Scope()) if p.name == pod.ref), None)
    if owner is None:
        raise NotFoundError(f"no istiod in namespace {opts.istio_namespace} "
                            f"({', '.join(i.name for i in istiods)}) lists proxy {pod.ref}",
                            hint="is it connected to another revision (--revision)? "
                                 "kubectl mesh sync --verify shows where it is connected")
    istiod = next(i for i in istiods if i.name == owner)
    # The proxy's own dump is fetched while istiod builds its view: two waits overlap.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kubectl-mesh-envoy") as pool:
        have = pool.submit(envoy_dump, session, pod)
        wanted = istiod.config_dump(pod.ref)
        have = have.result()
    if wanted.xds_failed:
        print(f"note: istiod's XDS debug interface did not give the config dump "
              f"({wanted.xds_failed}); read /debug/config_dump over {wanted.via}", file=stderr)
    print(f"comparing what istiod {owner} would send {pod.ref} ({wanted.via}) with the "
          "proxy's own config dump", file=stderr)
    diffs = sync_diff.compare(wanted.config, have)
    if opts.output in ("json", "yaml"):
        output.write(stdout, opts.output, data={"proxy": pod.ref, "istiod": owner,
                                                "sections": [d.to_dict() for d in diffs]})
    else:
        stdout.write(sync_diff.render(diffs))
    differing = [d.section for d in diffs if not d.match]
    if differing:
        raise FindingsError(f"{pod.ref}: {', '.join(differing)} differ from what istiod "
                            f"{owner} would send",
                            hint="a push not yet ACKed (STALE) or rejected (ERROR)?")
    return 0


# ---- output ----------------------------------------------------------------------------------

FINDING_HEADERS = ("NAME", "CHECK", "TYPE", "DETAIL")


def _write(opts, proxies, findings, stdout, stderr) -> None:
    write_result(stdout, stderr, opts.output, proxies, findings, datetime.now(timezone.utc))


def write_result(stdout, stderr, fmt: str, proxies, findings, now: datetime) -> None:
    """The sync table (or data), then --verify's findings; notes go to stderr. `findings`
    is None without --verify. With --verify, -o json|yaml is {"proxies", "findings"}."""
    if findings is not None and fmt in ("json", "yaml"):
        output.write(stdout, fmt, data={"proxies": [p.to_dict() for p in proxies],
                                        "findings": [f.to_dict() for f in findings]})
    else:
        write_status(stdout, fmt, proxies, now)
    shown = [f for f in findings or [] if f.severity != "info"]
    if shown and fmt in ("short", "wide"):
        stdout.write("\n")
        rows = [(f.proxy, f.check if f.severity == "error" else f"{f.check} (warning)",
                 f.type or "-", f.detail) for f in shown]
        output.write(stdout, fmt, headers=FINDING_HEADERS, rows=rows)
    for line in notes(proxies):
        print(line, file=stderr)
    if findings is not None:
        from kubectl_mesh.sync.verify import has_errors
        if not has_errors(findings):
            warned = f" ({len(shown)} warning(s))" if shown else ""
            print(f"verify: checked {len(proxies)} proxies against their own Envoy: no "
                  f"problems{warned}", file=stderr)
        checked = {p.name for p in proxies} | {f.proxy for f in findings}
        for line in unchecked_lines(findings, len(checked)):
            print(line, file=stderr)


def unchecked_lines(findings, total: int) -> list[str]:
    """One line per set of checks some proxies' Envoys keep no stats for (their UNCHECKED
    findings), instead of a row per proxy."""
    from kubectl_mesh.sync.verify import STATS_MATCHER_HINT, UNCHECKED
    by_what: dict[str, list[str]] = {}
    for f in findings:
        if f.check == UNCHECKED:
            what = f.detail.removeprefix("not checked: ").split(" (", 1)[0]
            by_what.setdefault(what, []).append(f.proxy)
    return [f"verify: not checked on {len(proxies)} of {total} proxies ({proxies[0]}"
            f"{', ...' if len(proxies) > 1 else ''}): {what} – their Envoy keeps no such stats "
            f"(Istio's default stats matcher); add {STATS_MATCHER_HINT} to the proxy config "
            "(meshConfig.defaultConfig, or the proxy.istio.io/config annotation) to check them"
            for what, proxies in by_what.items()]


def _raise_findings(proxies, missing, findings, scope, istiod_names, stderr) -> None:
    problems = []
    pending = not_synced(proxies)
    if pending:
        problems.append(f"{len(pending)} of {len(proxies)} proxies not SYNCED "
                        f"({', '.join(p.name for p in pending[:3])}"
                        f"{', ...' if len(pending) > 3 else ''})")
    if missing and findings is None:
        problems.append(f"no istiod lists {', '.join(missing[:3])}"
                        f"{', ...' if len(missing) > 3 else ''}")
    if findings:
        from kubectl_mesh.sync.verify import has_errors
        if has_errors(findings):
            problems.append(f"--verify found {sum(f.severity == 'error' for f in findings)} "
                            "problem(s)")
    if not proxies and not missing and not findings:
        print(f"no proxies {scope.describe()} are connected to istiod "
              f"({', '.join(istiod_names)})", file=stderr)
    if problems:
        raise FindingsError("; ".join(problems))


# ---- --file ----------------------------------------------------------------------------------


def load_payloads(path: str) -> dict[str, Any]:
    """A saved syncz (a JSON array: one istiod) or {istiod name: syncz array} (several);
    read with the same size bound as a config dump (`configdump.load.read_input`)."""
    from kubectl_mesh.configdump.load import read_input
    data, source = read_input(path)
    try:
        data = json.loads(data)
    except RecursionError as e:
        raise BadInputError(f"{source} nests too deeply to be a syncz") from e
    except ValueError as e:
        raise BadInputError(f"{source} is not JSON: {e}",
                            hint="save it with: curl localhost:15014/debug/syncz") from e
    if isinstance(data, dict):
        return data
    return {"-": data}


def _from_file(opts: SyncOptions, stdout, stderr) -> int:
    from kubectl_mesh.configdump.shape import reading
    if opts.verify or opts.diff or opts.wait:
        raise UsageError("--file shows a saved syncz; --verify, --diff and --wait need a cluster")
    with reading(opts.file, "istiod's /debug/syncz"):
        return _show_file(opts, stdout, stderr)


def _show_file(opts: SyncOptions, stdout, stderr) -> int:
    proxies = merge_replicas(load_payloads(opts.file))
    if opts.target:
        ids = {p.name for p in proxies
               if p.name == opts.target or p.name.startswith(opts.target + ".")}
        scope = Scope(proxy_ids=frozenset(ids))
    else:
        scope = scope_for(opts.cluster.namespace, opts.cluster.all_namespaces)
    proxies = scope.select(proxies)
    _write(opts, proxies, None, stdout, stderr)
    _raise_findings(proxies, [], None, scope, [opts.file], stderr)
    return 0
