"""What a kubelet says about its node: labels and status, as its node status setters fill
them (k8s.io/kubernetes pkg/kubelet/kubelet_node_status.go `initialNode`,
`defaultNodeStatusFuncs`; pkg/kubelet/nodestatus/setters.go). The API double's Node and the
real API server's kubelet (`sandbox.real.kubelet.node`) both use it."""

from __future__ import annotations

import datetime
import os
import pathlib
import platform

KUBELET_VERSION = "v1.37.2"
KUBELET_PORT = 10250
MAX_PODS = 110


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _memory_ki() -> int:
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _read(path: str) -> str:
    try:
        return pathlib.Path(path).read_text().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def capacity(state_dir: pathlib.Path) -> dict[str, str]:
    """cpu, memory, pods and ephemeral-storage of this machine (nodestatus.MachineInfo)."""
    st = os.statvfs(state_dir)
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{_memory_ki()}Ki",
            "pods": str(MAX_PODS), "ephemeral-storage": f"{st.f_blocks * st.f_frsize // 1024}Ki"}


def node_status(address: str, name: str, state_dir: pathlib.Path,
                previous: list[dict] | None = None, declared: tuple[str, ...] = ()) -> dict:
    """The status the kubelet's node status setters write; `declared` features go to
    status.declaredFeatures (nodestatus.NodeFeatures; k8s.io/component-helpers
    nodedeclaredfeatures)."""
    t = _now()
    before = {c["type"]: c for c in previous or []}

    def condition(kind: str, status: str, reason: str, message: str) -> dict:
        old = before.get(kind) or {}
        since = old.get("lastTransitionTime") if old.get("status") == status else None
        return {"type": kind, "status": status, "lastHeartbeatTime": t,
                "lastTransitionTime": since or t, "reason": reason, "message": message}

    cap = capacity(state_dir)
    extra = {"declaredFeatures": sorted(declared)} if declared else {}
    return extra | {
        "addresses": [{"type": "InternalIP", "address": address},
                      {"type": "Hostname", "address": name}],
        "capacity": cap, "allocatable": dict(cap),
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                      "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure",
                      "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID",
                      "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": {
            "machineID": _read("/etc/machine-id"), "systemUUID": _read("/etc/machine-id"),
            "bootID": _read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": platform.release(), "osImage": _os_image(),
            "containerRuntimeVersion": "sandbox://0.1.0", "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": _arch()},
    }


def node_labels(name: str) -> dict[str, str]:
    """The kubelet's default labels (hostname, os, arch and their beta twins)."""
    arch = _arch()
    return {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": arch}


def node_object(name: str, address: str, state_dir: pathlib.Path,
                declared: tuple[str, ...] = ()) -> dict:
    """The Node a kubelet registers (`initialNode`)."""
    return {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": name, "labels": node_labels(name),
        "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {}, "status": node_status(address, name, state_dir, declared=declared)}

