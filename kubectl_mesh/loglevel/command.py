"""`kubectl mesh loglevel`: list, set, reset, and set-for-a-while, on one proxy or a workload.

The CLI builds a `LogLevelOptions` and calls `run()`; this module never sees argparse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from kubectl_mesh.cli.common import ClusterOptions
from kubectl_mesh.errors import ExitCode, MeshError
from kubectl_mesh.loglevel import change, hold
from kubectl_mesh.loglevel.levels import LevelSpec, PodPlan


@dataclass(frozen=True)
class LogLevelOptions:
    cluster: ClusterOptions
    target: str | None = None
    selector: str | None = None
    spec: LevelSpec | None = None  # None: list (or --reset)
    reset: bool = False
    hold_for: float | None = None  # --for, seconds
    output: str = "short"
    concurrency: int = 10


def run(opts: LogLevelOptions, stdout: IO[str], stderr: IO[str]) -> int:
    from kubectl_mesh.session import Session

    def say(line: str) -> None:
        stderr.write(line + "\n")
        stderr.flush()

    with Session.open(opts.cluster) as session:
        pods = ready_pods(session.proxies(opts.target, opts.selector, stderr=stderr), say)
        if opts.spec is None and not opts.reset:
            return show(pods, session.admin, opts, stdout, stderr)
        spec = opts.spec
        if opts.reset:
            from kubectl_mesh.loglevel.meshdefault import mesh_default
            default = mesh_default(session.api)
            say(f"resetting to the mesh default level {default}")
            spec = LevelSpec.everything(default.level)
        return set_levels(pods, spec, session.admin, opts, say, stderr)


def ready_pods(pods: list, say) -> list:
    """Every ready pod of a workload (a lone pod is used even when not ready)."""
    if len(pods) <= 1:
        return pods
    ready = [p for p in pods if p.ready]
    for p in pods:
        if not p.ready and ready:
            say(f"skipping {p.ref}: not ready")
    return ready or pods


def show(pods, connect, opts: LogLevelOptions, stdout, stderr) -> int:
    from kubectl_mesh import output
    from kubectl_mesh.loglevel.listing import Listing

    current = change.read_levels(pods, connect, concurrency=opts.concurrency)
    listing = Listing.of([(ref, levels) for ref, levels, _ in current])
    headers, rows = listing.table()
    output.write(stdout, opts.output, headers=headers, rows=rows, data=listing.data())
    if len(pods) > 1:
        stderr.write(listing.summary() + "\n")
    return ExitCode.OK


def set_levels(pods, spec: LevelSpec, connect, opts: LogLevelOptions, say, stderr) -> int:
    """Change (with rollback on failure); with --for, wait and restore, whatever ends it."""
    deferred = lambda: hold.deferred(say)  # noqa: E731 - passed down as a factory
    plans: list[PodPlan] = []
    restore_code: int | None = None
    with hold.ending_signals_raise():
        try:
            plans = change.change_levels(pods, spec, connect, concurrency=opts.concurrency,
                                         say=say, deferred=deferred)
            if opts.hold_for is None:
                return ExitCode.OK
            if not any(p.changes for p in plans):
                say("nothing changed, so nothing to restore")
                return ExitCode.OK
            hold.countdown(opts.hold_for, stderr)
        except KeyboardInterrupt:
            restore_code = ExitCode.INTERRUPTED
        except hold.Terminated as e:
            restore_code = e.exit_code
        if not any(p.changes for p in plans):  # interrupted before or while changing
            return restore_code if restore_code is not None else ExitCode.OK
        if restore_code is not None:
            say("interrupted: restoring the previous levels")
        with hold.deferred(say):
            back = change.restore(plans, connect, concurrency=opts.concurrency, say=say)
    if back.failed:
        raise MeshError(change.not_restored_message(back.failed, "restore") +
                        "; set them by hand with kubectl mesh loglevel POD --level LOGGER:LEVEL")
    say(f"restored the previous levels on {len(back.changed)} "
        f"pod{'' if len(back.changed) == 1 else 's'}")
    return restore_code if restore_code is not None else ExitCode.OK
