"""`kubectl mesh loglevel`: list, set, reset, and set-for-a-while, on one proxy or a workload.

The CLI builds a `LogLevelOptions` and calls `run()`; this module never sees argparse.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import IO

from kubectl_mesh.clusteroptions import ClusterOptions
from kubectl_mesh.errors import ExitCode, MeshError
from kubectl_mesh.loglevel import change, hold, holding
from kubectl_mesh.loglevel.holdnote import RENEW_SECONDS
from kubectl_mesh.loglevel.levels import LevelSpec, PodPlan
from kubectl_mesh.loglevel.podnotes import PodNotes


@dataclass(frozen=True)
class LogLevelOptions:
    cluster: ClusterOptions
    target: str | None = None
    selector: str | None = None
    spec: LevelSpec | None = None  # None: list (or --reset)
    reset: bool = False
    restore_abandoned: bool = False
    hold_for: float | None = None  # --for, seconds
    output: str = "short"
    concurrency: int = 10


def run(opts: LogLevelOptions, stdout: IO[str], stderr: IO[str]) -> int:
    from kubectl_mesh.session import Session, ready_pods

    def say(line: str) -> None:
        stderr.write(line + "\n")
        stderr.flush()

    with Session.open(opts.cluster) as session:
        pods = ready_pods(session.proxies(opts.target, opts.selector, stderr=stderr),
                          opts.target or f"-l {opts.selector}", stderr)
        notes = PodNotes(session.api, say)
        if opts.restore_abandoned:
            return finish_abandoned(pods, notes, session.admin, opts, say)
        if opts.spec is None and not opts.reset:
            return show(pods, session.admin, opts, stdout, stderr, notes)
        spec = opts.spec
        if opts.reset:
            from kubectl_mesh.loglevel.meshdefault import mesh_default
            default = mesh_default(session.api)
            say(f"resetting to the mesh default level {default}")
            spec = LevelSpec.everything(default.level)
        return set_levels(pods, spec, session.admin, opts, say, stderr, notes)


def show(pods, connect, opts: LogLevelOptions, stdout, stderr, notes: PodNotes) -> int:
    from kubectl_mesh import output
    from kubectl_mesh.loglevel.listing import Listing

    current = change.read_levels(pods, connect, concurrency=opts.concurrency)
    listing = Listing.of([(ref, levels) for ref, levels, _ in current])
    headers, rows = listing.table(wide=opts.output == "wide")
    output.write(stdout, opts.output, headers=headers, rows=rows, data=listing.data())
    if len(pods) > 1:
        stderr.write(listing.summary() + "\n")
    found: dict[str, list] = {}
    change.run_bounded(pods, notes.read, opts.concurrency,
                       lambda pod, got, e: found.__setitem__(pod.ref, got or []))
    for pod in pods:
        holding.tell(pod.ref, found.get(pod.ref, []), notes, notes.say)
    return ExitCode.OK


def finish_abandoned(pods, notes: PodNotes, connect, opts: LogLevelOptions, say) -> int:
    """`--restore-abandoned`: finish the holds whose run was killed."""
    finished, failed = holding.restore_abandoned(pods, notes, connect,
                                                 concurrency=opts.concurrency, say=say)
    if failed:
        pod, error = failed[0]
        raise change.ChangeFailed(
            f"could not finish the abandoned holds on {len(failed)} pod(s): {pod.ref}: "
            f"{error}", int(getattr(error, "exit_code", ExitCode.FAILURE)),
            hint="retry; the notes stay on the pods until their holds are finished")
    if not finished:
        say(f"no abandoned holds on the {len(pods)} pod{'' if len(pods) == 1 else 's'}")
    else:
        say(f"finished {finished} abandoned hold{'' if finished == 1 else 's'}")
    return ExitCode.OK


def set_levels(pods, spec: LevelSpec, connect, opts: LogLevelOptions, say, stderr,
               notes: PodNotes) -> int:
    """Change (with rollback on failure); with --for, note the hold on the pods, wait, and
    give back what still has the levels set here, whatever ends it."""
    deferred = lambda: hold.deferred(say)  # noqa: E731 - passed down as a factory
    holds = holding.Holding(notes, str(spec), opts.hold_for, say,
                            concurrency=opts.concurrency)
    plans: list[PodPlan] = []
    restore_code: int | None = None
    with hold.ending_signals_raise():
        try:
            try:
                plans = change.change_levels(pods, spec, connect, concurrency=opts.concurrency,
                                             say=say, deferred=deferred,
                                             before_change=holds.begin)
                if opts.hold_for is None:
                    return ExitCode.OK
                if not any(p.changes for p in plans):
                    say("nothing changed, so nothing to restore")
                    return ExitCode.OK
                hold.countdown(opts.hold_for, stderr, sleep=_renewing(holds))
            except KeyboardInterrupt:
                restore_code = ExitCode.INTERRUPTED
            except hold.Terminated as e:
                restore_code = e.exit_code
            if not any(p.changes for p in plans):  # interrupted before or while changing
                return restore_code if restore_code is not None else ExitCode.OK
            if restore_code is not None:
                say("interrupted: restoring the previous levels")
            with hold.deferred(say):
                ended = holds.end(plans, connect)
        finally:
            with hold.deferred(say):
                holds.forget()
    if ended.failed:
        noted = any(p.ref in holds.written for p, _ in ended.failed)
        later = " (their hold notes stay: --restore-abandoned on the target finishes them once " \
                "the pods answer)" if noted else ""
        raise MeshError(change.not_restored_message(ended.failed, "restore") +
                        f"; set them by hand with kubectl mesh loglevel POD --level "
                        f"LOGGER:LEVEL{later}")
    n = len(ended.restored)
    left = f"; left the loggers changed since on {len(ended.left)} pod" \
           f"{'' if len(ended.left) == 1 else 's'} as they are" if ended.left else ""
    say(f"restored the previous levels on {n} pod{'' if n == 1 else 's'}{left}")
    return restore_code if restore_code is not None else ExitCode.OK


def _renewing(holds: holding.Holding):
    """A `sleep` for the countdown that renews the hold's notes every RENEW_SECONDS."""
    next_renewal = time.monotonic() + RENEW_SECONDS

    def sleep(seconds: float) -> None:
        nonlocal next_renewal
        time.sleep(seconds)
        if time.monotonic() >= next_renewal:
            holds.renew()
            next_renewal = time.monotonic() + RENEW_SECONDS

    return sleep
