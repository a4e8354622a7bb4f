"""The pods of a followed workload, kept current: `accesslog -f deploy/x` follows the pods
that start later (a scale-up, a rollout) and lets go of the deleted ones.

A pod watch on the workload's selector (`kube.watch.PodWatch`) tells of every change; a pod
joins once it is Running, Ready and has an istio-proxy, and the target still resolves to it
(the same rules as at the start: a Deployment's own ReplicaSets, no terminating pods). A
joining pod's log is read from the moment the follow started, so the lines it wrote before
it was seen are not lost; a deleted pod's stream is closed. Each join and leave is told on
stderr. Like stern's pod watch (stern/stern/watch.go), not like `kubectl logs -f deploy/x`,
which reads one pod and never looks again.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import IO, Callable

from kubectl_mesh.accesslog.source import PodLogStream
from kubectl_mesh.errors import MeshError
from kubectl_mesh.kube.pods import Pod

Join = Callable[[str, Callable], None]


class FollowedPods:
    """The log streams of the pods being followed, by pod name; `watch(join)` adds and
    removes pods as the cluster changes; `close()` ends the watch and every stream."""

    def __init__(self, session, opts, stderr: IO[str]):
        self.session = session
        self.opts = opts
        self.stderr = stderr
        self.started = time.time()  # joining pods are read from here on
        self.streams: dict[str, PodLogStream] = {}
        self._foreign: set[str] = set()  # pods the selector matches but the target does not own
        self._lock = threading.Lock()
        self._watch = None
        self._closed = False

    def open(self, pods: list) -> None:
        """Open the log of each pod (concurrently); the first error is raised, with nothing
        left open."""
        from kubectl_mesh.session import for_each
        opts = self.opts
        streams = [PodLogStream(self.session.api, p.namespace, p.name, opts.query)
                   for p in pods]
        with self._lock:
            self.streams.update((s.pod, s) for s in streams)
        opened = for_each(streams, lambda s: s.open(), concurrency=opts.concurrency)
        failed = [e for _, _, e in opened if e is not None]
        if failed:
            raise failed[0]

    def selector(self) -> tuple[str, str] | None:
        """(namespace, label selector) of the target's pods; None for a single pod."""
        from kubectl_mesh.kube.targets import find_object, label_selector_string, parse_target
        target = parse_target(self.opts.target, self.opts.selector)
        if target.kind == "selector":
            return self.session.namespace, target.selector
        kind, obj = find_object(self.session.api, target, self.session.namespace)
        if kind == "pod":
            return None
        spec = obj.get("spec") or {}
        selector = (label_selector_string({"matchLabels": spec.get("selector") or {}})
                    if kind == "service" else label_selector_string(spec.get("selector") or {}))
        return obj["metadata"]["namespace"], selector

    def watch(self, join: Join) -> None:
        """Follow the pods that start from now on until close(); a failed watch is told once
        (the pods already followed are still read)."""
        from kubectl_mesh.kube.watch import PodWatch
        try:
            where = self.selector()
            if where is None:
                return
            with self._lock:
                if self._closed:
                    return
                self._watch = PodWatch(self.session.api, *where)
            for etype, obj in self._watch.events():
                pod = Pod.from_json(obj)
                if etype == "DELETED":
                    self._leave(pod)
                elif self._wanted(pod):
                    self._join(pod, join)
        except MeshError as e:
            if not self._closed:
                self._say(f"warning: {e}; pods that start from now on are not followed")

    def _wanted(self, pod: Pod) -> bool:
        if pod.name in self.streams or pod.name in self._foreign or not (
                pod.phase == "Running" and pod.ready and pod.has_proxy and not pod.terminating):
            return False
        if any(p.name == pod.name for p in
               self.session.proxies(self.opts.target, self.opts.selector)):
            return True
        self._foreign.add(pod.name)  # e.g. another Deployment's pod with the same labels
        return False

    def _join(self, pod: Pod, join: Join) -> None:
        since = max(1, math.ceil(time.time() - self.started))
        query = dataclasses.replace(self.opts.query, since_seconds=since, tail_lines=None)
        stream = PodLogStream(self.session.api, pod.namespace, pod.name, query)
        with self._lock:
            if self._closed:
                return
            self.streams[pod.name] = stream
        try:
            stream.open()
        except MeshError as e:
            self._say(f"warning: pod {pod.ref} started, but its log cannot be read: {e}")
            return
        self._say(f"pod {pod.ref} joined: following its istio-proxy log too")
        join(pod.name, stream.lines)

    def _leave(self, pod: Pod) -> None:
        self._foreign.discard(pod.name)
        with self._lock:
            stream = self.streams.pop(pod.name, None)
        if stream is None:
            return
        self._say(f"pod {pod.ref} left (deleted): no longer following it")
        stream.close()

    def _say(self, line: str) -> None:
        print(line, file=self.stderr, flush=True)

    def close(self) -> None:
        """End the watch and every stream; safe to call twice and from another thread."""
        with self._lock:
            self._closed = True
            watch, streams = self._watch, list(self.streams.values())
        if watch is not None:
            watch.close()
        for s in streams:
            s.close()
