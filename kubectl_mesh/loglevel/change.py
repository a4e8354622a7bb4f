"""Reading, changing and putting back the levels of many proxies.

The rules: read every proxy and validate the spec before any proxy is touched; change the
proxies with bounded concurrency, recording each success the moment it happens; when one
fails (or the user interrupts), put back every proxy already changed, with retries, and say
exactly which proxies are in which state.

`connect(pod)` is a context manager yielding an `EnvoyAdmin` (normally `Session.admin`), so a
fresh port-forward is opened per attempt: a forward that dropped is simply replaced.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterable, Sequence, TypeVar

from kubectl_mesh.errors import AdminError, ExitCode, MeshError, UnreachableError
from kubectl_mesh.loglevel.levels import LevelSpec, PodPlan, describe, plan

Connect = Callable[[object], ContextManager]
Say = Callable[[str], None]
T = TypeVar("T")

RETRY_ATTEMPTS = 3
RETRY_BACKOFF = 0.5  # seconds, doubled per attempt


class ChangeFailed(MeshError):
    """A change failed on some pod; `exit_code` tells whether the rest was put back."""

    def __init__(self, message: str, exit_code: int, hint: str | None = None):
        super().__init__(message, hint)
        self.exit_code = exit_code


def _ref(pod) -> str:
    return getattr(pod, "ref", str(pod))


class _Skipped(Exception):
    """An item not started because an earlier one failed."""


def run_bounded(items: Sequence, work: Callable, concurrency: int,
                done: Callable[[object, object, BaseException | None], None], *,
                stop_on_error: bool = False) -> None:
    """Run `work(item)` for each item, at most `concurrency` at once; `done(item, result,
    error)` is called in THIS thread as each finishes. With `stop_on_error`, items not yet
    started when one fails are skipped (not reported): touch no more pods than needed.

    On KeyboardInterrupt (or any BaseException raised here by a signal handler), work not yet
    started is cancelled, work in flight is waited for and reported, then it re-raises: the
    caller knows exactly which items completed.
    """
    stop = threading.Event()

    def guarded(item):
        if stop.is_set():
            raise _Skipped()
        try:
            return work(item)
        except Exception:
            if stop_on_error:
                stop.set()  # here, in the worker: the next item may start before `done` runs
            raise

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency))
    futures = {pool.submit(guarded, item): item for item in items}
    reported: set = set()

    def report(future) -> None:
        reported.add(future)
        if future.cancelled() or isinstance(future.exception(), _Skipped):
            return
        error = future.exception()
        done(futures[future], None if error else future.result(), error)

    try:
        for future in concurrent.futures.as_completed(futures):
            report(future)
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for future in futures:
            if future not in reported and future.done():
                report(future)
        raise
    finally:
        pool.shutdown(wait=True)


def read_levels(pods: Iterable, connect: Connect, *, concurrency: int) -> list[tuple[str, dict, object]]:
    """(ref, {logger: level}, pod) for every pod, in pod order. When any pod cannot be read,
    raises its error naming how many failed (nothing has been changed yet)."""
    pods = list(pods)
    got: dict[int, dict] = {}
    errors: list[tuple[object, BaseException]] = []
    index = {id(p): i for i, p in enumerate(pods)}

    def read(pod) -> dict:
        with connect(pod) as admin:
            return admin.logging()

    def done(pod, levels, error) -> None:
        if error is not None:
            errors.append((pod, error))
        else:
            got[index[id(pod)]] = levels

    run_bounded(pods, read, concurrency, done)
    if errors:
        errors.sort(key=lambda e: index[id(e[0])])
        _, first = errors[0]
        if not isinstance(first, MeshError):
            raise first
        others = f" (and {len(errors) - 1} more of {len(pods)} pods)" if len(errors) > 1 else ""
        raise ChangeFailed(f"{first.message}{others}; nothing was changed", first.exit_code,
                           first.hint) from first
    return [(_ref(p), got[i], p) for i, p in enumerate(pods)]


def send(plan_: PodPlan, connect: Connect) -> dict:
    """Move one proxy from `before` to `after` (one atomic `paths=` POST; Envoy applies all
    or none) and check the listing it answers with."""
    wanted = plan_.forward()
    if not wanted:
        return dict(plan_.after)
    with connect(plan_.pod) as admin:
        now = admin.logging(levels=wanted)
    wrong = {n: now.get(n) for n, lvl in wanted.items() if now.get(n) != lvl}
    if wrong:
        shown = ", ".join(f"{n}={v}" for n, v in list(wrong.items())[:3])
        raise MeshError(f"{plan_.ref} accepted the change but reports {shown} afterwards")
    return now


def retried(work: Callable[[], T], attempts: int | None = None,
            backoff: float | None = None) -> T:
    """`work()`, retried on unreachable errors (a dropped port-forward, a slow Envoy); an
    answer from Envoy (AdminError) is not retried."""
    attempts = RETRY_ATTEMPTS if attempts is None else attempts
    backoff = RETRY_BACKOFF if backoff is None else backoff
    for attempt in range(attempts):
        try:
            return work()
        except UnreachableError as e:
            if isinstance(e, AdminError) or attempt == attempts - 1:
                raise
            time.sleep(backoff * (2 ** attempt))
    raise AssertionError("unreachable")


def send_with_retry(plan_: PodPlan, connect: Connect, attempts: int | None = None,
                    backoff: float | None = None) -> dict:
    """`send`, retried on unreachable errors."""
    return retried(lambda: send(plan_, connect), attempts, backoff)


@dataclass
class Outcome:
    """Which plans reached which state; filled as work completes."""

    changed: list[PodPlan] = field(default_factory=list)
    failed: list[tuple[PodPlan, BaseException]] = field(default_factory=list)


def restore(plans: Sequence[PodPlan], connect: Connect, *, concurrency: int, say: Say,
            verb: str = "restored") -> Outcome:
    """Put each plan's `before` levels back (only the loggers it changed), with retries.
    Returns which pods were put back and which were not (with why)."""
    outcome = Outcome()
    todo = [p for p in plans if p.changes]

    def done(plan_, _, error) -> None:
        if error is None:
            outcome.changed.append(plan_)
            say(describe(plan_.reversed(), verb=verb))
        else:
            outcome.failed.append((plan_, error))
            say(f"{plan_.ref}: NOT {verb}: {error}")

    run_bounded([p.reversed() for p in todo], lambda p: send_with_retry(p, connect),
                concurrency, lambda p, r, e: done(p.reversed(), r, e))
    return outcome


def not_restored_message(failed: Sequence[tuple[PodPlan, BaseException]], what: str) -> str:
    """`could not put back 1 pod: a.ns (http is debug, was warning: <why>)`."""
    parts = []
    for plan_, error in failed:
        moves = ", ".join(f"{n} is {new}, was {old}" for n, (old, new) in list(plan_.changes.items())[:3])
        more = f" and {len(plan_.changes) - 3} more" if len(plan_.changes) > 3 else ""
        parts.append(f"{plan_.ref} ({moves}{more}: {error})")
    return f"could not {what} {_pods(len(failed))}: " + "; ".join(parts)


def apply(plans: Sequence[PodPlan], connect: Connect, *, concurrency: int, say: Say,
          deferred: Callable[[], ContextManager] | None = None) -> list[PodPlan]:
    """Change every pod; on any failure or interrupt put the changed pods back and raise.

    `deferred()` is a context manager that holds off signals while rolling back (see
    `signals.deferred`). Returns the plans that were applied (pods already at the wanted
    levels are not touched and not returned).
    """
    todo = [p for p in plans if p.changes]
    for p in plans:
        if not p.changes:
            say(describe(p))
    outcome = Outcome()

    def done(plan_, _, error) -> None:
        if error is None:
            outcome.changed.append(plan_)
            say(describe(plan_))
        else:
            outcome.failed.append((plan_, error))

    try:
        run_bounded(todo, lambda p: send(p, connect), concurrency, done, stop_on_error=True)
    except BaseException:
        if outcome.changed:
            say(f"interrupted: putting back the {len(outcome.changed)} pods already changed")
            with (deferred() if deferred else contextlib.nullcontext()):
                back = restore(outcome.changed, connect, concurrency=concurrency, say=say,
                               verb="put back")
            if back.failed:
                say("error: " + not_restored_message(back.failed, "put back"))
        raise
    if not outcome.failed:
        return outcome.changed
    with (deferred() if deferred else contextlib.nullcontext()):
        back = restore(outcome.changed, connect, concurrency=concurrency, say=say,
                       verb="put back")
    raise _failure(todo, outcome, back)


def _pods(n: int) -> str:
    return f"{n} pod{'' if n == 1 else 's'}"


def _failure(todo: Sequence[PodPlan], outcome: Outcome, back: Outcome) -> ChangeFailed:
    """The one exact line: what failed, what was put back, what is left changed/unknown."""
    failed = outcome.failed
    reached = {p.ref for p in outcome.changed} | {p.ref for p, _ in failed}
    untouched = [p.ref for p in todo if p.ref not in reached]
    first_plan, first_error = failed[0]
    unknown = [p.ref for p, e in failed if isinstance(e, UnreachableError)
               and not isinstance(e, AdminError)]
    head = f"changing levels failed on {len(failed)} of {len(todo)} pods: {first_plan.ref}: " \
           f"{first_error}"
    if len(failed) > 1:
        head += f" (also: {', '.join(p.ref for p, _ in failed[1:])})"
    if back.failed:
        tail = f"; put back {_pods(len(back.changed))}, but " + \
               not_restored_message(back.failed, "put back")
        code = ExitCode.FAILURE
    elif back.changed:
        tail = f"; put back the {_pods(len(back.changed))} already changed " \
               f"({', '.join(p.ref for p in back.changed)})"
        code = _code_of(first_error)
    else:
        tail = "; no pod was changed"
        code = _code_of(first_error)
    if untouched:
        tail += f"; not attempted: {', '.join(untouched)}"
    if unknown:
        tail += f"; the levels of {', '.join(unknown)} are unknown (a change sent to a pod that " \
                f"did not answer may still apply when it recovers)"
    return ChangeFailed(head + tail, code, hint=None)


def _code_of(error: BaseException) -> int:
    return int(getattr(error, "exit_code", ExitCode.FAILURE))


def change_levels(pods: Sequence, spec: LevelSpec, connect: Connect, *, concurrency: int,
                  say: Say, deferred: Callable[[], ContextManager] | None = None,
                  before_change: Callable[[list[PodPlan]], None] | None = None) -> list[PodPlan]:
    """Read → validate → plan → apply (with rollback). Returns every pod's plan; pods whose
    plan has no changes were not touched. `before_change(plans)` runs after validation, just
    before the first change (tests use it to break a pod mid-change)."""
    current = read_levels(pods, connect, concurrency=concurrency)
    plans = plan(spec, current)
    if before_change is not None:
        before_change(plans)
    apply(plans, connect, concurrency=concurrency, say=say, deferred=deferred)
    return plans
