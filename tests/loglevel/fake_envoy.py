"""A fake Envoy `/logging` with the real one's rules (atomic `paths=`, 400 on unknown names),
and failure switches, for testing change/rollback/restore without a cluster."""

from __future__ import annotations

import contextlib
import threading
import time

from kubectl_mesh.errors import AdminError, UnreachableError

LOGGERS = ("admin", "http", "router", "upstream")


class FakeEnvoy:
    def __init__(self, ref: str, level: str = "warning"):
        self.ref = ref
        self.name, self.namespace = ref.split(".", 1)
        self.levels = {n: level for n in LOGGERS}
        self.sets: list[dict] = []  # every accepted change
        self.fail_sets = 0  # the next N changes fail as unreachable ...
        self.fail_connects = 0  # ... the next N connections fail as unreachable
        self.reject_sets = False  # changes answered 400 (nothing applied)
        self.delay = 0.0

    def logging(self, levels=None, level=None) -> dict:
        if self.delay:
            time.sleep(self.delay)  # a slow admin endpoint: what the delay tests are about
        if levels or level:
            if self.fail_sets:
                self.fail_sets -= 1
                raise UnreachableError(f"Envoy admin of {self.ref} did not answer /logging within 1s")
            if self.reject_sets:
                raise AdminError(f"Envoy admin of {self.ref} answered 400 to POST /logging", 400)
            if any(n not in self.levels for n in (levels or {})):
                raise AdminError("unknown logger name", 400)
            self.sets.append(dict(levels or {}))
            self.levels.update({n: level for n in self.levels} if level else {})
            self.levels.update(levels or {})
        return dict(self.levels)


class FakeMesh:
    """Pods are FakeEnvoys; `connect` is what Session.admin would be."""

    def __init__(self, n: int, level: str = "warning"):
        self.pods = [FakeEnvoy(f"p{i}.ns", level) for i in range(n)]
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def connect(self, pod: FakeEnvoy):
        if pod.fail_connects:
            pod.fail_connects -= 1
            raise UnreachableError(f"port-forward to {pod.ref} dropped")
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield pod
        finally:
            with self._lock:
                self.in_flight -= 1

    def levels(self) -> list[dict]:
        return [dict(p.levels) for p in self.pods]


class FakePodApi:
    """The two calls hold notes make: GET a pod, merge-PATCH its annotations."""

    def __init__(self):
        self.annotations: dict[str, dict[str, str]] = {}  # by pod name

    def get_pod(self, namespace, name, allow_missing=False):
        return {"metadata": {"name": name, "annotations": dict(self.annotations.get(name, {}))}}

    def request(self, method, path, json=None, headers=None):
        assert method == "PATCH" and headers["Content-Type"] == "application/merge-patch+json"
        name = path.rsplit("/", 1)[1]
        notes = self.annotations.setdefault(name, {})
        for key, value in json["metadata"]["annotations"].items():
            if value is None:
                notes.pop(key, None)
            else:
                notes[key] = value
