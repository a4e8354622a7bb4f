"""Container IDs and cgroups like a real node's: `containerd://<64 hex>` in containerStatuses,
each container process in `.../kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope`."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess

import pytest

from sandbox.cgroups import (
    ROOT_FILE,
    CgroupTree,
    hierarchies,
    own_cgroup,
    scope_relpath,
)

CONTAINERD_ID = re.compile(r"containerd://([0-9a-f]{64})")

pytestmark = pytest.mark.timeout(180)


def container_pids(sandbox) -> dict[tuple[str, str, str], int]:
    return {(p["namespace"], p["name"], c["name"]): c["pid"]
            for p in sandbox.status() for c in p["containers"] if c.get("pid")}


def cgroup_paths(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return [line.split(":", 2)[2] for line in f.read().splitlines()]


@pytest.mark.slow  # a sandbox of its own
def test_every_container_process_is_in_the_cgroup_its_status_names(sandbox):
    pids = container_pids(sandbox)
    pods = sandbox.pods()
    seen = set()
    for pod in pods:
        meta = pod["metadata"]
        statuses = pod["status"]["containerStatuses"] + \
            pod["status"].get("initContainerStatuses", [])  # native sidecars too
        # the injected sidecar's requests make the pod Burstable (pkg/apis/core/helper/qos)
        qos = pod["status"]["qosClass"].lower()
        assert qos == ("burstable" if meta["namespace"] == "istioinaction" else qos), meta
        for status in statuses:
            if "running" not in status["state"]:
                continue  # a completed init container (istio-init) has no process
            match = CONTAINERD_ID.fullmatch(status["containerID"])
            assert match, status["containerID"]
            hexid = match[1]
            pid = pids[(meta["namespace"], meta["name"], status["name"])]
            uid = meta["uid"].replace("-", "_")
            expected = (f"/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{uid}"
                        f".slice/cri-containerd-{hexid}.scope")
            assert any(p.endswith(expected) and "/kubectl-mesh-sandbox-" in p
                       for p in cgroup_paths(pid)), (pid, cgroup_paths(pid))
            seen.add(hexid)
    assert len(seen) == sum(1 for p in pods
                            for s in p["status"]["containerStatuses"]
                            + p["status"].get("initContainerStatuses", [])
                            if "running" in s["state"]) >= 8


@pytest.mark.slow  # restarts a container
def test_a_restarted_container_gets_a_new_id_and_its_old_cgroup_goes(sandbox):
    root = pathlib.Path((sandbox.state / ROOT_FILE).read_text())
    pod = sandbox.pods("istioinaction", "app=catalog,version=v1")[0]
    name = pod["metadata"]["name"]
    old = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "catalog")
    old_id = CONTAINERD_ID.fullmatch(old["containerID"])[1]
    scope = next(root.rglob(f"cri-containerd-{old_id}.scope"))
    pid = container_pids(sandbox)[("istioinaction", name, "catalog")]
    os.kill(pid, signal.SIGKILL)

    def restarted():
        p = sandbox.pods("istioinaction", "app=catalog,version=v1")[0]
        s = next(s for s in p["status"]["containerStatuses"] if s["name"] == "catalog")
        return s if s["restartCount"] == old["restartCount"] + 1 and "running" in s["state"] \
            else None

    new = sandbox.wait_for(restarted, 30, what="the catalog container to restart")
    new_id = CONTAINERD_ID.fullmatch(new["containerID"])[1]
    assert new_id != old_id
    assert not scope.exists()
    key = ("istioinaction", name, "catalog")
    sandbox.wait_for(lambda: container_pids(sandbox).get(key) not in (None, pid), 10,
                     what="the status file to list the new pid")
    new_pid = container_pids(sandbox)[key]
    assert any(p.endswith(f"cri-containerd-{new_id}.scope") for p in cgroup_paths(new_pid))


def test_the_tree_is_under_our_own_cgroup_in_a_writable_hierarchy(sandbox):
    root = pathlib.Path((sandbox.state / ROOT_FILE).read_text())
    assert re.fullmatch(r"kubectl-mesh-sandbox-\d+", root.name)
    hierarchy, controller = next((h, c) for h, c in hierarchies() if root.is_relative_to(h))
    own = own_cgroup(controller, f"/proc/{int((sandbox.state / 'sandbox.pid').read_text())}/cgroup")
    assert root.parent == hierarchy / own.lstrip("/")


# -- the tree itself -----------------------------------------------------------------------
@pytest.mark.parametrize("qos,expected", [
    ("BestEffort", "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-poda_b.slice/"
                   "cri-containerd-ff.scope"),
    ("Burstable", "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda_b.slice/"
                  "cri-containerd-ff.scope"),
    ("Guaranteed", "kubepods.slice/kubepods-poda_b.slice/cri-containerd-ff.scope"),
], ids=["besteffort", "burstable", "guaranteed"])
def test_scope_paths_follow_the_systemd_driver(qos, expected):
    assert str(scope_relpath(qos, "a-b", "ff")) == expected


def test_no_writable_hierarchy_means_no_tree_and_says_why(tmp_path):
    tree, why = CgroupTree.create(7, tmp_path, mount=tmp_path / "nothing")
    assert tree is None and "no cgroup hierarchy" in why
    assert not (tmp_path / ROOT_FILE).exists()


def test_removing_a_scope_kills_stragglers_and_empty_parents(tmp_path):
    tree, why = CgroupTree.create(600 + os.getpid() % 1000, tmp_path)
    if tree is None:
        pytest.skip(f"no writable cgroup hierarchy: {why}")
    try:
        a = tree.add_scope(scope_relpath("BestEffort", "pod-a", "aa" * 32))
        b = tree.add_scope(scope_relpath("BestEffort", "pod-b", "bb" * 32))
        with a.joining() as join:
            straggler = subprocess.Popen(["sleep", "60"], preexec_fn=join)
        tree.remove_scope(a)
        assert straggler.wait(5) == -signal.SIGKILL
        assert not a.path.exists() and not a.path.parent.exists()  # pod-a's slice too
        assert b.path.exists()  # pod-b's is untouched
        tree.remove_scope(b)
        assert [p.name for p in tree.root.iterdir() if p.is_dir()] == []
    finally:
        assert tree.remove_all()
    assert not tree.root.exists() and not (tmp_path / ROOT_FILE).exists()
