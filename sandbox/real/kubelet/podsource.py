"""The pods bound to the node, from a real API server, in the shape the pod runtime reads
the API double's Store: `add_listener`, `find`, `update`.

As a kubelet's pod config source (pkg/kubelet/config/apiserver.go `NewSourceApiserver`: a
list-watch of pods with `fieldSelector=spec.nodeName=<node>`), a pod that gets a
deletionTimestamp is a pod to stop: listeners see it as DELETED, and once its processes are
gone `pod_stopped` removes it with grace period 0 and a UID precondition (the status
manager's `syncPod` → `canBeDeleted`, pkg/kubelet/status/status_manager.go). Status goes
through the pods/status subresource, read-modify-write, retried on conflicts."""

from __future__ import annotations

import copy
import http.client
import threading
import urllib.parse

from ...apiserver.store import Event, NotFound
from .client import ApiStatus, NodeClient


class PodSource:
    def __init__(self, client: NodeClient, node_name: str):
        self.client = client
        self.node_name = node_name
        self._lock = threading.Lock()
        self._pods: dict[str, dict] = {}  # by uid: the last seen object
        self._stopping: set[str] = set()  # uids listeners were told are DELETED
        self._listeners: list = []
        self._closed = threading.Event()
        self._watch_conn = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="kubelet-pods")

    # -- the Store surface the runtime uses
    def add_listener(self, listener) -> None:
        self._listeners.append(listener)

    def find(self, key: str, namespace: str, name: str) -> dict | None:
        with self._lock:
            for obj in self._pods.values():
                m = obj["metadata"]
                if m["namespace"] == namespace and m["name"] == name:
                    return copy.deepcopy(obj)
        return None

    def update(self, key: str, namespace: str, name: str, mutate, *,
               bump_generation: bool = False) -> dict:
        """Write what `mutate` makes of the pod through pods/status (which never changes
        the generation: `bump_generation` is there for the Store's signature)."""
        path = f"/api/v1/namespaces/{_q(namespace)}/pods/{_q(name)}"
        for attempt in range(50):
            try:
                obj = self.client.request("GET", path)
            except ApiStatus as e:
                if e.code == 404:
                    raise NotFound(name) from None
                if e.code == 403 and attempt < 49:
                    # The Node authorizer learns of the binding from its own pod informer
                    # (plugin/pkg/auth/authorizer/node/graph_populator.go): the watch can
                    # tell the node first; until its graph has the edge the node is denied.
                    # A kubelet's status manager just syncs again later.
                    self._closed.wait(0.2)
                    continue
                raise
            mutate(obj)
            try:
                return self.client.request("PUT", path + "/status", obj)
            except ApiStatus as e:
                if e.code == 404:
                    raise NotFound(name) from None
                if e.code not in (403, 409):
                    raise
                self._closed.wait(0.2 if e.code == 403 else 0)
        raise NotFound(f"{name}: status kept conflicting")

    # -- life cycle
    def start(self) -> "PodSource":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closed.set()
        conn = self._watch_conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(2)
            except OSError:
                pass
        self._thread.join(10)

    def pod_stopped(self, obj: dict) -> None:
        """The processes of a deleted pod are gone: remove it for good."""
        m = obj["metadata"]
        if not m.get("deletionTimestamp"):
            return  # stopped because the node shuts down, not deleted
        try:
            self.client.request("DELETE", f"/api/v1/namespaces/{_q(m['namespace'])}/pods/"
                                f"{_q(m['name'])}", {
                                    "kind": "DeleteOptions", "apiVersion": "v1",
                                    "gracePeriodSeconds": 0,
                                    "preconditions": {"uid": m["uid"]}})
        except ApiStatus as e:
            if e.code not in (404, 409):
                raise

    # -- list and watch
    def _run(self) -> None:
        selector = urllib.parse.quote(f"spec.nodeName={self.node_name}")
        base = f"/api/v1/pods?fieldSelector={selector}"
        rv = None
        while not self._closed.is_set():
            try:
                if rv is None:
                    listed = self.client.request("GET", base)
                    self._relisted(listed.get("items") or [])
                    rv = listed["metadata"]["resourceVersion"]
                conn, events = self.client.watch(
                    f"{base}&watch=1&allowWatchBookmarks=true&resourceVersion={rv}"
                    f"&timeoutSeconds=240")
                self._watch_conn = conn
                for ev in events:
                    if ev["type"] == "ERROR":
                        rv = None  # 410 Gone: list again
                        break
                    rv = ev["object"]["metadata"].get("resourceVersion", rv)
                    if ev["type"] != "BOOKMARK":
                        self._seen(ev["type"], ev["object"])
            # A watch cut mid-chunk (the API server ending or restarting it) is an
            # http.client.IncompleteRead, not an OSError: like any lost watch, list again.
            except (OSError, http.client.HTTPException, ApiStatus, ValueError):
                if self._closed.wait(1.0):
                    return
                rv = None

    def _relisted(self, items: list[dict]) -> None:
        uids = {o["metadata"]["uid"] for o in items}
        with self._lock:
            gone = [o for uid, o in self._pods.items() if uid not in uids]
        for obj in gone:
            self._seen("DELETED", obj)
        for obj in items:
            self._seen("MODIFIED", obj)

    def _seen(self, kind: str, obj: dict) -> None:
        m = obj["metadata"]
        uid = m["uid"]
        with self._lock:
            known = uid in self._pods
            if kind == "DELETED":
                self._pods.pop(uid, None)
            else:
                self._pods[uid] = obj
            tell = None
            if kind == "DELETED":
                if uid in self._stopping:
                    self._stopping.discard(uid)  # told when its deletionTimestamp came
                else:
                    tell = "DELETED"
            elif m.get("deletionTimestamp"):
                if uid not in self._stopping:
                    self._stopping.add(uid)
                    tell = "DELETED"
            elif not known:
                tell = "ADDED"
            else:
                tell = "MODIFIED"
        if tell is not None:
            event = Event(0, tell, "pods", m["namespace"], m["name"], obj)
            for listener in list(self._listeners):
                listener(event)


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


