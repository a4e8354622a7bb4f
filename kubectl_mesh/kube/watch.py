"""A Kubernetes watch on pods: `GET .../pods?watch=true&labelSelector=...`, one JSON event per
line, a stream of the API client (`KubeApi.stream`: its proxy policy, TLS, credentials and
renewal on a 401) on a connection of its own, held for as long as the command runs.

Like client-go's RetryWatcher (k8s.io/client-go/tools/watch/retrywatcher.go, `doReceive`):
the server ends every watch after `timeoutSeconds`, and the watch is then resumed from the
last resourceVersion seen; a `410 Gone` (that version is compacted away) starts over without
one, which replays the current pods as ADDED. Consumers must treat events as idempotent.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Iterator

from kubectl_mesh.errors import MeshError, UnreachableError
from kubectl_mesh.kube.api import resource_path

WATCH_SECONDS = 300  # the server ends each watch after this; it is then resumed
RECONNECTS = 3  # a broken watch is reopened this many times in a row before giving up
RECONNECT_BACKOFF = 0.5  # seconds, doubled per attempt


class PodWatch:
    """The events on pods matching `selector` in `namespace`: (type, pod JSON), type one of
    ADDED, MODIFIED, DELETED. The current pods come first as ADDED. `close()` may be called
    from another thread; the iteration then ends."""

    def __init__(self, api, namespace: str, selector: str):
        self.api = api  # kube.api.KubeApi
        self.namespace = namespace
        self.selector = selector
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._stream = None

    @property
    def path(self) -> str:
        return resource_path("pods", self.namespace)

    def events(self) -> Iterator[tuple[str, dict]]:
        version = ""
        failures = 0
        while not self._closed.is_set():
            try:
                for etype, obj in self._one_watch(version):
                    failures = 0
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if etype == "ERROR":
                        if obj.get("code") == 410:  # too old: start over from the current pods
                            version = ""
                            break
                        raise MeshError(f"the watch on pods in namespace {self.namespace} "
                                        f"failed: {obj.get('message') or obj}")
                    if etype in ("ADDED", "MODIFIED", "DELETED"):
                        yield etype, obj
            except UnreachableError:
                if self._closed.is_set():
                    return
                failures += 1
                if failures > RECONNECTS:
                    raise
                time.sleep(RECONNECT_BACKOFF * 2 ** (failures - 1))

    def _one_watch(self, version: str) -> Iterator[tuple[str, dict]]:
        """One watch request until the server ends it (or close())."""
        params = {"watch": "true", "labelSelector": self.selector,
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(WATCH_SECONDS)}
        if version:
            params["resourceVersion"] = version
        if self._closed.is_set():
            return
        # Only the connect is timed: a watch is quiet for as long as nothing changes.
        stream = self.api.stream(self.path, params,
                                 what=f"the watch on pods in namespace {self.namespace}")
        with self._lock:
            self._stream = stream
        if self._closed.is_set():  # close() came while it opened
            stream.close()
        try:
            for line in stream.lines():
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError as e:
                    raise UnreachableError(f"the watch on pods in namespace {self.namespace} "
                                           f"broke: {e}") from e
                yield event.get("type", ""), event.get("object") or {}
        finally:
            with self._lock:
                self._stream = None
            stream.close()

    def close(self) -> None:
        """End the watch; safe to call twice and from another thread."""
        self._closed.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
