"""A `--for` run's holds on its pods: noted on each pod before the change, renewed while it
waits, given back at the end (only what still has the level it set), and the notes taken off.
Also: telling about other runs' holds, and finishing abandoned ones (`--restore-abandoned`).
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Sequence

from kubectl_mesh.loglevel import change
from kubectl_mesh.loglevel.holdnote import (
    GiveBack,
    HoldNote,
    baseline,
    changed_since_message,
    clock_time,
    give_back,
)
from kubectl_mesh.loglevel.levels import PodPlan, describe
from kubectl_mesh.loglevel.podnotes import PodNotes

Connect = Callable[[object], ContextManager]
Say = Callable[[str], None]


def tell(ref: str, notes: Sequence[HoldNote], pod_notes: PodNotes, say: Say,
         own_id: str = "") -> None:
    """One stderr line per other run's hold on the pod: live ones, and abandoned ones with
    the command that finishes them."""
    for note in notes:
        if note.id == own_id:
            continue
        if pod_notes.live(note):
            say(f"note: {ref} is held by another loglevel --for: {note.describe()}; each "
                f"logger goes back to its level from before the first hold when the last ends")
        else:
            back = ",".join(f"{n}:{lvl}" for n, lvl in note.previous.items())
            say(f"note: {ref} has an abandoned hold: {note.describe()} ended without "
                f"restoring; 'kubectl mesh loglevel {ref} --restore-abandoned' puts back "
                f"{back} where its levels are still set")


@dataclass
class Ended:
    """How giving back went, per pod."""

    restored: list[PodPlan] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # refs with loggers changed since
    failed: list[tuple[PodPlan, BaseException]] = field(default_factory=list)


class Holding:
    """This run's holds (`seconds` None: a plain change, which only reads others' notes)."""

    def __init__(self, notes: PodNotes, spec: str, seconds: float | None, say: Say, *,
                 concurrency: int):
        self.notes = notes
        self.spec = spec
        self.seconds = seconds
        self.say = say
        self.concurrency = concurrency
        self.id = secrets.token_hex(5)
        self.ours: dict[str, HoldNote] = {}  # by pod ref
        self.written: dict[str, object] = {}  # pod ref -> pod, for the notes on the cluster
        self.unfinished: set[str] = set()  # pods not given back: their notes stay
        self._lock = threading.Lock()

    def begin(self, plans: Sequence[PodPlan]) -> None:
        """Before the change: read every pod's notes, tell about other holds, and (with a
        duration) note this hold on each pod that will change."""
        found: dict[str, list[HoldNote]] = {}
        change.run_bounded(list(plans), lambda p: self.notes.read(p.pod), self.concurrency,
                           lambda p, notes, e: found.__setitem__(p.ref, notes or []))
        for p in plans:
            tell(p.ref, found.get(p.ref, []), self.notes, self.say)
        if self.seconds is None:
            return
        for p in plans:
            if p.changes:
                live = [n for n in found.get(p.ref, []) if self.notes.live(n)]
                self.ours[p.ref] = self.notes.new_note(self.id, self.spec, self.seconds,
                                                       p.forward(), baseline(p, live))
        self._write([p for p in plans if p.ref in self.ours])

    def _write(self, plans: Sequence[PodPlan]) -> None:
        def done(plan_, ok, error) -> None:
            if ok:
                with self._lock:
                    self.written[plan_.ref] = plan_.pod
        change.run_bounded(list(plans), lambda p: self.notes.write(p.pod, self.ours[p.ref]),
                           self.concurrency, done)

    def renew(self) -> None:
        """Tell the pods this hold is still alive (renew the lease of its notes)."""
        now = self.notes.clock()
        with self._lock:
            written = dict(self.written)
        for ref in written:
            self.ours[ref] = dataclasses.replace(self.ours[ref], renewed=now)
        change.run_bounded(list(written.items()),
                           lambda item: self.notes.write(item[1], self.ours[item[0]]),
                           self.concurrency, lambda item, ok, e: None)

    def end(self, plans: Sequence[PodPlan], connect: Connect) -> Ended:
        """Give back each changed pod's loggers that still have the level this run set."""
        ended = Ended()
        todo = [p for p in plans if p.changes]

        def give_back_one(plan_: PodPlan) -> GiveBack:
            ours = self.ours.get(plan_.ref) or self.notes.new_note(
                self.id, self.spec, 0, plan_.forward(), plan_.backward())
            with connect(plan_.pod) as admin:
                current = admin.logging()
            others = [n for n in self.notes.read(plan_.pod)
                      if n.id != self.id and self.notes.live(n)]
            result = give_back(plan_.ref, ours, current, others, plan_.pod)
            if result.plan.changes:
                change.send(result.plan, connect)
            return result

        def work(plan_: PodPlan) -> GiveBack:
            return change.retried(lambda: give_back_one(plan_))

        def done(plan_, result: GiveBack | None, error) -> None:
            if error is not None:
                ended.failed.append((plan_, error))
                self.unfinished.add(plan_.ref)
                self.say(f"{plan_.ref}: NOT restored: {error}")
                return
            report(plan_.ref, result, self.say, verb="restored")
            ended.restored.append(result.plan)
            if result.changed_since:
                ended.left.append(plan_.ref)

        change.run_bounded(todo, work, self.concurrency, done)
        return ended

    def forget(self) -> None:
        """Take this run's notes off the pods, except where the levels could not be given
        back: there the note lets `--restore-abandoned` finish the hold later."""
        with self._lock:
            written = {r: p for r, p in self.written.items() if r not in self.unfinished}
            self.written = {r: p for r, p in self.written.items() if r in self.unfinished}

        def work(item):
            ref, pod = item
            return self.notes.remove(pod, self.ours[ref].key)

        change.run_bounded(list(written.items()), work, self.concurrency,
                           lambda item, ok, e: None)


def report(ref: str, result: GiveBack, say: Say, *, verb: str) -> None:
    """The stderr lines for one pod's give-back."""
    if result.plan.changes:
        say(describe(result.plan, verb=verb))
    for name, note in result.kept_for.items():
        if name in result.plan.changes:
            say(f"{ref}: {name} is at {note.set[name]} while the hold {note.describe()} "
                f"lasts; that hold puts it back after")
    if result.changed_since:
        say(changed_since_message(ref, result.changed_since))
    if not result.plan.changes and not result.changed_since and not result.kept_for:
        say(f"{ref}: nothing to restore")


def restore_abandoned(pods: Sequence, notes: PodNotes, connect: Connect, *, concurrency: int,
                      say: Say) -> tuple[int, list[tuple[object, BaseException]]]:
    """Finish every abandoned hold on `pods`, youngest first: put back the loggers that still
    have its levels, then take its note off. Returns (holds finished, failures)."""
    finished = 0
    failed: list[tuple[object, BaseException]] = []

    def work(pod) -> list[tuple[HoldNote, GiveBack]]:
        found = notes.read(pod)
        abandoned = [n for n in found if not notes.live(n)]
        if not abandoned:
            return []
        live = [n for n in found if notes.live(n)]
        with connect(pod) as admin:
            current = dict(admin.logging())
        results = []
        for note in reversed(abandoned):
            result = give_back(pod.ref, note, current, live, pod)
            if result.plan.changes:
                current.update(change.send_with_retry(result.plan, connect))
            results.append((note, result))
            notes.remove(pod, note.key)
        return results

    def done(pod, results, error) -> None:
        nonlocal finished
        if error is not None:
            failed.append((pod, error))
            say(f"{pod.ref}: abandoned holds NOT restored: {error}")
            return
        for note, result in results or []:
            say(f"{pod.ref}: finishing the abandoned hold {note.spec} of {note.holder} "
                f"(ended {clock_time(note.until)})")
            report(pod.ref, result, say, verb="restored")
            finished += 1

    change.run_bounded(list(pods), work, concurrency, done)
    return finished, failed
