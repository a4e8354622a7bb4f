"""A deleted pod terminates before it is gone, as on a real API server: it gets a
deletionTimestamp and deletionGracePeriodSeconds (its terminationGracePeriodSeconds), its
ReplicaSet replaces it at once, and it is removed once its kubelet has stopped its containers
(pkg/registry/core/pod/strategy.go `CheckGracefulDelete`; pkg/controller/controller_utils.go
`FilterActivePods`). A forced delete with grace 0 removes it at once. Runs on either backend
(`pytest --backend real`): the double is checked against the real server with this test."""

from __future__ import annotations

import json

from sandbox.testing import WatchRecorder, kubectl_binary, pid_alive, wait_until

SELECTOR = "app=catalog,version=v2"


def _watch(sandbox) -> WatchRecorder:
    listed = json.loads(sandbox.kubectl("get", "--raw", "/api/v1/namespaces/istioinaction/pods").stdout)
    rv = listed["metadata"]["resourceVersion"]
    return WatchRecorder(kubectl_binary(), f"/api/v1/namespaces/istioinaction/pods?watch=1"
                         f"&resourceVersion={rv}", env=sandbox.env())


def _ready_replicas(sandbox) -> list[str]:
    return sorted(p["metadata"]["name"] for p in sandbox.pods("istioinaction", SELECTOR)
                  if not p["metadata"].get("deletionTimestamp")
                  and any(c["type"] == "Ready" and c["status"] == "True"
                          for c in p["status"].get("conditions") or []))


def test_a_deleted_pod_terminates_then_goes_and_is_replaced_at_once(sandbox):
    before = _ready_replicas(sandbox)
    assert len(before) == 2
    victim = before[0]
    pids = [c["pid"] for p in sandbox.status() if p["name"] == victim for c in p["containers"]
            if c["pid"]]  # running containers (istio-init has completed)
    watch = _watch(sandbox)
    try:
        sandbox.kubectl("delete", "pod", victim, "-n", "istioinaction", "--wait=false")
        name = f"istioinaction/{victim}"
        wait_until(lambda: "DELETED" in watch.of(name), 60, f"{victim} removed")
        terminating = [o for t, n, o in watch.events
                       if n == name and t == "MODIFIED" and o["metadata"].get("deletionTimestamp")]
        assert terminating, watch.of(name)  # the old double removed it in one DELETED
        assert terminating[0]["metadata"]["deletionGracePeriodSeconds"] == 30
        # the replacement was created while the victim was terminating, not after
        added = [n for t, n, _ in watch.events if t == "ADDED" and n != name]
        first_added = next(i for i, (t, n, _) in enumerate(watch.events) if t == "ADDED")
        removed = next(i for i, (t, n, _) in enumerate(watch.events)
                       if t == "DELETED" and n == name)
        assert added and first_added < removed, watch.events
    finally:
        watch.stop()
    assert not [p for p in pids if pid_alive(p)]
    wait_until(lambda: len(_ready_replicas(sandbox)) == 2, 60, "two ready replicas again")


def test_a_forced_delete_removes_the_pod_at_once(sandbox):
    victim = wait_until(lambda: len(r := _ready_replicas(sandbox)) == 2 and r, 60, "replicas")[0]
    watch = _watch(sandbox)
    try:
        sandbox.kubectl("delete", "pod", victim, "-n", "istioinaction", "--grace-period=0",
                        "--force", "--wait=false")
        name = f"istioinaction/{victim}"
        wait_until(lambda: "DELETED" in watch.of(name), 30, f"{victim} removed")
        assert not any(o["metadata"].get("deletionGracePeriodSeconds")
                       for t, n, o in watch.events if n == name and t == "MODIFIED")
    finally:
        watch.stop()
    wait_until(lambda: len(_ready_replicas(sandbox)) == 2, 60, "two ready replicas again")
