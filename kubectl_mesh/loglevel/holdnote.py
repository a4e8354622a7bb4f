"""The note a `loglevel --for` run leaves on each pod it changed, and the rules that make
overlapping runs end right.

The note is a pod annotation `loglevel.kubectl-mesh.io/hold-<id>` (one key per run, so two
runs never rewrite each other's note) holding JSON: who holds, the spec, until when, the
levels it set and the levels to go back to. Like a coordination.k8s.io Lease
(holderIdentity, renewTime, leaseDurationSeconds), the holder renews it while it waits; a note
whose holder stopped renewing, or whose process is gone on this very host, is abandoned (a
`kill -9`, a closed laptop) and `--restore-abandoned` finishes its work.

The rules, all pure here:
- `baseline`: a run that changes a logger another live hold set takes over that hold's level
  to go back to, not the held level: A (`http:debug`) then B (`http:trace`) must end at the
  level before A, whichever ends first.
- `give_back`: at the end, a logger is put back only while it still has the level this run
  set; one changed since is left as it is (and said). While another live hold has set the
  logger, it goes back to that hold's level, which that hold later puts back in turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Callable, Iterable, Mapping

from kubectl_mesh.loglevel.levels import PodPlan

ANNOTATION_PREFIX = "loglevel.kubectl-mesh.io/hold-"
LEASE_SECONDS = 60.0  # a note not renewed for this long is abandoned
RENEW_SECONDS = 20.0  # how often a waiting run renews its notes


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def clock_time(t: float) -> str:
    """`15:21:04`, local time, as the countdown's user reads it."""
    return datetime.fromtimestamp(t).strftime("%H:%M:%S")


@dataclass(frozen=True)
class HoldNote:
    """One run's hold on one pod."""

    id: str
    user: str
    host: str
    pid: int
    spec: str
    started: float  # epoch seconds
    until: float
    renewed: float
    set: Mapping[str, str] = field(default_factory=dict)  # the levels this run set
    previous: Mapping[str, str] = field(default_factory=dict)  # the levels to go back to
    boot: str = ""  # the host's boot id: a pid means something only on the same boot

    @property
    def key(self) -> str:
        return ANNOTATION_PREFIX + self.id

    @property
    def holder(self) -> str:
        """`alice@laptop (pid 4711)`."""
        return f"{self.user}@{self.host} (pid {self.pid})"

    def to_annotation(self) -> str:
        return json.dumps({"user": self.user, "host": self.host, "pid": self.pid,
                           "spec": self.spec, "started": _stamp(self.started),
                           "until": _stamp(self.until), "renewed": _stamp(self.renewed),
                           "set": dict(self.set), "previous": dict(self.previous),
                           "boot": self.boot},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_annotation(cls, key: str, value: str) -> HoldNote | None:
        """The note under `key`, or None when it is not one of ours or not readable."""
        if not key.startswith(ANNOTATION_PREFIX):
            return None
        try:
            data = json.loads(value)
            return cls(id=key[len(ANNOTATION_PREFIX):], user=str(data["user"]),
                       host=str(data["host"]), pid=int(data["pid"]), spec=str(data["spec"]),
                       started=_parse_stamp(data["started"]), until=_parse_stamp(data["until"]),
                       renewed=_parse_stamp(data["renewed"]),
                       set=MappingProxyType({str(k): str(v) for k, v in data["set"].items()}),
                       previous=MappingProxyType({str(k): str(v)
                                                  for k, v in data["previous"].items()}),
                       boot=str(data.get("boot", "")))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def live(self, now: float, host: str, boot: str, pid_alive: Callable[[int], bool]) -> bool:
        """Still held: renewed within the lease, and (on this host, since its boot) its
        process runs."""
        if self.renewed + LEASE_SECONDS < now:
            return False
        return (self.host, self.boot) != (host, boot) or pid_alive(self.pid)

    def describe(self) -> str:
        """`http:debug by alice@laptop (pid 4711) until 15:21:04`."""
        return f"{self.spec} by {self.holder} until {clock_time(self.until)}"


def notes_of(annotations: Mapping[str, str] | None) -> list[HoldNote]:
    """The readable hold notes among a pod's annotations, oldest first."""
    notes = [HoldNote.from_annotation(k, v) for k, v in (annotations or {}).items()]
    return sorted((n for n in notes if n is not None), key=lambda n: (n.started, n.id))


def baseline(plan_: PodPlan, live: Iterable[HoldNote]) -> dict[str, str]:
    """The level each logger `plan_` changes should go back to: what it was, unless a live
    hold set that level - then the level that hold goes back to (the youngest such hold)."""
    live = sorted(live, key=lambda n: n.started, reverse=True)
    out = {}
    for name, (old, _) in plan_.changes.items():
        holder = next((n for n in live if n.set.get(name) == old and name in n.previous), None)
        out[name] = holder.previous[name] if holder is not None else old
    return out


@dataclass(frozen=True)
class GiveBack:
    """What ending a hold on one pod means: the change to send, the loggers left alone
    because they were changed since ({logger: (now, what we set)}), and the loggers put to
    another live hold's level ({logger: that hold})."""

    plan: PodPlan
    changed_since: Mapping[str, tuple[str, str]]
    kept_for: Mapping[str, HoldNote]


def give_back(ref: str, ours: HoldNote, current: Mapping[str, str],
              others_live: Iterable[HoldNote], pod: object = None) -> GiveBack:
    """The change that ends `ours` on a pod whose levels are `current` now."""
    others = sorted(others_live, key=lambda n: n.started, reverse=True)
    target: dict[str, str] = {}
    changed_since: dict[str, tuple[str, str]] = {}
    kept_for: dict[str, HoldNote] = {}
    for name, level in ours.set.items():
        now = current.get(name)
        if now is None:
            continue
        if now != level:
            changed_since[name] = (now, level)
            continue
        holder = next((n for n in others if name in n.set), None)
        if holder is not None:
            target[name] = holder.set[name]
            kept_for[name] = holder
        else:
            target[name] = ours.previous.get(name, level)
    before = {n: current[n] for n in target}
    return GiveBack(PodPlan.of(ref, before, target, pod), MappingProxyType(changed_since),
                    MappingProxyType(kept_for))


def changed_since_message(ref: str, changed: Mapping[str, tuple[str, str]]) -> str:
    """`a.ns: left http at trace (it was changed since this hold set debug)`."""
    parts = ", ".join(f"{n} at {now}" for n, (now, _) in changed.items())
    set_ = ", ".join(f"{n}:{level}" for n, (_, level) in changed.items())
    return f"{ref}: left {parts}: changed by someone else since this hold set {set_}"
