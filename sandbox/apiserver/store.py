"""A thread-safe object store with resource versions and watch events."""

from __future__ import annotations

import collections
import copy
import dataclasses
import datetime
import itertools
import threading
import uuid
from typing import Callable, Iterator


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Conflict(Exception):
    """The object already exists (409)."""


class Gone(Exception):
    """The requested resourceVersion is too old to watch from (410)."""


class NotFound(Exception):
    """No such object (404)."""


@dataclasses.dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    key: str  # kind key, e.g. "pods"
    namespace: str
    name: str
    obj: dict
    old: dict | None = None  # a MODIFIED event's previous object (filtered watches need it)


Listener = Callable[[Event], None]


class Store:
    """Objects by (kind key, namespace, name); every write is an Event with a new rv.

    Listeners (controllers, the runtime) are called after each write, outside the lock,
    in the writer's thread.

    A stored object is never changed in place (every write stores a fresh copy), so in-process
    readers that promise not to mutate may share it: `peek` and `scan` skip the deep copies
    `get` and `list` make for callers that edit what they read.
    """

    HISTORY = 20000

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        # kind key -> (namespace, name) -> object: listing one kind never walks the others.
        self._objects: dict[str, dict[tuple[str, str], dict]] = collections.defaultdict(dict)
        self._events: collections.deque[Event] = collections.deque(maxlen=self.HISTORY)
        self._rv = 0
        self._listeners: list[Listener] = []
        self._closed = False

    # -- reading
    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def get(self, key: str, namespace: str, name: str) -> dict:
        with self._lock:
            try:
                return copy.deepcopy(self._objects[key][(namespace, name)])
            except KeyError:
                raise NotFound(name) from None

    def peek(self, key: str, namespace: str, name: str) -> dict | None:
        """The stored object itself, or None: shared, so the caller must not mutate it."""
        with self._lock:
            return self._objects[key].get((namespace, name))

    def find(self, key: str, namespace: str, name: str) -> dict | None:
        try:
            return self.get(key, namespace, name)
        except NotFound:
            return None

    def list(self, key: str, namespace: str | None = None) -> tuple[list[dict], int]:
        with self._lock:
            items, rv = self.scan(key, namespace)
            return [copy.deepcopy(o) for o in items], rv

    def scan(self, key: str, namespace: str | None = None) -> tuple[list[dict], int]:
        """Like `list` (sorted by namespace, name) but the stored objects themselves, shared:
        the caller must not mutate them."""
        with self._lock:
            by_name = self._objects[key]
            keys = sorted(k for k in by_name if namespace is None or k[0] == namespace)
            return [by_name[k] for k in keys], self._rv

    # -- writing
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def create(self, key: str, obj: dict) -> dict:
        meta = obj.setdefault("metadata", {})
        ns, name = meta.get("namespace", ""), meta["name"]
        with self._lock:
            if (ns, name) in self._objects[key]:
                raise Conflict(name)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            meta.setdefault("generation", 1)
            ev = self._write("ADDED", key, ns, name, obj)
        self._notify(ev)
        return copy.deepcopy(ev.obj)

    def replace(self, key: str, obj: dict, *, bump_generation: bool = True) -> dict:
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        with self._lock:
            old = self._objects[key].get((ns, name))
            if old is None:
                raise NotFound(name)
            for field in ("uid", "creationTimestamp"):
                meta[field] = old["metadata"].get(field)
            generation = old["metadata"].get("generation", 1)
            if bump_generation and old.get("spec") != obj.get("spec"):
                generation += 1
            meta["generation"] = generation
            if old == {**obj, "metadata": {**meta, "resourceVersion": old["metadata"].get("resourceVersion")}}:
                return copy.deepcopy(old)  # no change, no event (like the real API)
            ev = self._write("MODIFIED", key, ns, name, obj, old)
        self._notify(ev)
        return copy.deepcopy(ev.obj)

    def update(self, key: str, namespace: str, name: str, mutate: Callable[[dict], None], *,
               bump_generation: bool = True) -> dict:
        """Read-modify-write under the lock; `mutate` edits the object in place."""
        with self._lock:
            obj = self.get(key, namespace, name)
            mutate(obj)
            return self.replace(key, obj, bump_generation=bump_generation)

    def delete(self, key: str, namespace: str, name: str) -> dict:
        with self._lock:
            obj = self._objects[key].get((namespace, name))
            if obj is None:
                raise NotFound(name)
            del self._objects[key][(namespace, name)]
            self._rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self._rv)
            ev = Event(self._rv, "DELETED", key, namespace, name, obj)
            self._events.append(ev)
            self._cond.notify_all()
        self._notify(ev)
        return copy.deepcopy(obj)

    def _write(self, etype: str, key: str, ns: str, name: str, obj: dict,
               old: dict | None = None) -> Event:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        stored = copy.deepcopy(obj)
        self._objects[key][(ns, name)] = stored
        ev = Event(self._rv, etype, key, ns, name, stored, old)
        self._events.append(ev)
        self._cond.notify_all()
        return ev

    def _notify(self, ev: Event) -> None:
        for listener in list(self._listeners):
            listener(ev)

    # -- watching
    def _events_after(self, rv: int) -> list[Event]:
        """Events with rv > `rv`. Every write adds exactly one event and rv moves by one per
        write, so the history is contiguous: index arithmetic instead of a scan of 20000."""
        if not self._events:
            return []
        start = max(0, rv + 1 - self._events[0].rv)
        return list(itertools.islice(self._events, start, None))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cond.notify_all()

    def events_since(self, rv: int, key: str, namespace: str | None,
                     timeout: float) -> Iterator[Event]:
        """Yield events after `rv` for one kind until `timeout` seconds pass or the store closes."""
        import time
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._events and rv < self._events[0].rv - 1 and rv < self._rv - self.HISTORY:
                raise Gone(str(rv))
        last = rv
        while True:
            with self._lock:
                batch = self._events_after(last)
                if not batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        return
                    self._cond.wait(min(remaining, 1.0))
                    if self._closed:
                        return
                    continue
            for e in batch:
                last = e.rv
                if e.key == key and (namespace is None or e.namespace == namespace):
                    yield dataclasses.replace(e, obj=copy.deepcopy(e.obj))  # `old` is only read
