"""A Kubernetes watch on pods: `GET .../pods?watch=true&labelSelector=...`, one JSON event per
line, on a connection of its own (a watch holds it for as long as the command runs).

Like client-go's RetryWatcher (k8s.io/client-go/tools/watch/retrywatcher.go, `doReceive`):
the server ends every watch after `timeoutSeconds`, and the watch is then resumed from the
last resourceVersion seen; a `410 Gone` (that version is compacted away) starts over without
one, which replays the current pods as ADDED. Consumers must treat events as idempotent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Iterator

from kubectl_mesh.errors import MeshError, UnreachableError

WATCH_SECONDS = 300  # the server ends each watch after this; it is then resumed
RECONNECTS = 3  # a broken watch is reopened this many times in a row before giving up
RECONNECT_BACKOFF = 0.5  # seconds, doubled per attempt


def stream_session(config):
    """A `requests.Session` with the kubeconfig's TLS context, proxies and credentials, for
    one long-lived stream (a followed log, a watch)."""
    import requests

    from kubectl_mesh.kube.api import proxies_for, tls_adapter
    session = requests.Session()
    session.trust_env = False
    session.proxies = proxies_for(config)
    session.mount("https://", tls_adapter(config))
    session.mount("http://", tls_adapter(config))
    session.headers.update({"User-Agent": "kubectl-mesh"})
    return session


class PodWatch:
    """The events on pods matching `selector` in `namespace`: (type, pod JSON), type one of
    ADDED, MODIFIED, DELETED. The current pods come first as ADDED. `close()` may be called
    from another thread; the iteration then ends."""

    def __init__(self, config, namespace: str, selector: str, timeout: float | None = 10.0):
        self.config = config  # kube.kubeconfig.ApiConfig
        self.namespace = namespace
        self.selector = selector
        self.timeout = timeout
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._response = None
        self._session = None

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods"

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
        import requests

        from kubectl_mesh.kube.api import _reason, status_error
        params = {"watch": "true", "labelSelector": self.selector,
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(WATCH_SECONDS)}
        if version:
            params["resourceVersion"] = version
        with self._lock:
            if self._closed.is_set():
                return
            if self._session is None:
                self._session = stream_session(self.config)
            session = self._session
        try:
            # Only the connect is timed: a watch is quiet for as long as nothing changes.
            resp = session.get(self.config.server + self.path, params=params, stream=True,
                               timeout=(self.timeout, None))
        except requests.exceptions.RequestException as e:
            raise UnreachableError(f"cannot watch pods in namespace {self.namespace} on "
                                   f"{self.config.where}: {_reason(e)}") from e
        if resp.status_code != 200:
            body = resp.content
            resp.close()
            raise status_error(resp.status_code, body, "GET", self.path + "?watch=true",
                               self.config)
        with self._lock:
            self._response = resp
        try:
            for line in resp.iter_lines(chunk_size=None):
                if not line:
                    continue
                event = json.loads(line)
                yield event.get("type", ""), event.get("object") or {}
        except (requests.exceptions.RequestException, OSError, ValueError, AttributeError) as e:
            if self._closed.is_set():
                return
            raise UnreachableError(f"the watch on pods in namespace {self.namespace} broke: "
                                   f"{_reason(e)}") from e
        finally:
            with self._lock:
                self._response = None
            resp.close()

    def close(self) -> None:
        """End the watch; safe to call twice and from another thread."""
        self._closed.set()
        with self._lock:
            resp, session = self._response, self._session
        if resp is not None:
            conn = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
            sock = getattr(conn, "sock", None)
            if isinstance(sock, socket.socket):  # wakes a reader blocked in recv()
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if session is not None:
            session.close()
