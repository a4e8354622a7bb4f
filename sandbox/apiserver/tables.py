"""meta.k8s.io/v1 Table rendering, so `kubectl get` prints the usual columns."""

from __future__ import annotations

import datetime


def _age(obj: dict) -> str:
    ts = (obj.get("metadata") or {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    created = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    secs = int((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds())
    if secs < 120:
        return f"{max(secs, 0)}s"
    if secs < 3600 * 2:
        return f"{secs // 60}m"
    if secs < 86400 * 2:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _pod_row(o: dict) -> list:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    statuses = status.get("containerStatuses") or []
    # native sidecars (restartable init containers) count among READY's containers once
    # started (k8s pkg/printers/internalversion/printers.go `printPod`)
    sidecars = {c.get("name") for c in spec.get("initContainers") or []
                if c.get("restartPolicy") == "Always"}
    sidecar_statuses = [s for s in status.get("initContainerStatuses") or []
                        if s.get("name") in sidecars]
    ready = sum(1 for s in statuses if s.get("ready")) + \
        sum(1 for s in sidecar_statuses if s.get("started") and s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses + sidecar_statuses)
    phase = status.get("phase", "Pending")
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        phase = "Terminating"
    for s in statuses:
        waiting = (s.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            phase = waiting["reason"]
    total = len(spec.get("containers") or []) + len(sidecars)
    return [o["metadata"]["name"], f"{ready}/{total}", phase,
            restarts, _age(o), status.get("podIP") or "<none>", spec.get("nodeName") or "<none>"]


def _deploy_row(o: dict) -> list:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    return [o["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _age(o)]


def _rs_row(o: dict) -> list:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    return [o["metadata"]["name"], spec.get("replicas", 1), status.get("replicas", 0),
            status.get("readyReplicas", 0), _age(o)]


def _svc_row(o: dict) -> list:
    spec = o.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    ingress = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("ip", "") for i in ingress) or (
        "<pending>" if spec.get("type") == "LoadBalancer" else "<none>")
    return [o["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP") or "None",
            external, ports or "<none>", _age(o)]


def _ns_row(o: dict) -> list:
    return [o["metadata"]["name"], (o.get("status") or {}).get("phase", "Active"), _age(o)]


def _node_row(o: dict) -> list:
    """k8s.io/kubernetes pkg/printers/internalversion/printers.go `printNode`."""
    status, labels = o.get("status") or {}, o["metadata"].get("labels") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    state = ["Ready" if ready[0].get("status") == "True" else "NotReady"] if ready else ["Unknown"]
    if (o.get("spec") or {}).get("unschedulable"):
        state.append("SchedulingDisabled")
    roles = sorted({k.removeprefix("node-role.kubernetes.io/") for k in labels
                    if k.startswith("node-role.kubernetes.io/") and k != "node-role.kubernetes.io/"}
                   | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()))
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        return next((a["address"] for a in status.get("addresses") or [] if a.get("type") == kind),
                    "<none>")
    kernel = info.get("kernelVersion") or "<unknown>"
    if info.get("architecture"):
        kernel += f" ({info['architecture']})"
    return [o["metadata"]["name"], ",".join(state), ",".join(roles) or "<none>", _age(o),
            info.get("kubeletVersion", ""), address("InternalIP"), address("ExternalIP"),
            info.get("osImage") or "<unknown>", kernel,
            info.get("containerRuntimeVersion") or "<unknown>"]


def _col(name: str, priority: int = 0, type_: str = "string") -> dict:
    return {"name": name, "type": type_, "format": "name" if name == "Name" else "",
            "description": name, "priority": priority}


_COLUMNS = {
    "pods": ([_col("Name"), _col("Ready"), _col("Status"), _col("Restarts", type_="integer"),
              _col("Age"), _col("IP", 1), _col("Node", 1)], _pod_row),
    "deployments.apps": ([_col("Name"), _col("Ready"), _col("Up-to-date", type_="integer"),
                          _col("Available", type_="integer"), _col("Age")], _deploy_row),
    "replicasets.apps": ([_col("Name"), _col("Desired", type_="integer"),
                          _col("Current", type_="integer"), _col("Ready", type_="integer"),
                          _col("Age")], _rs_row),
    "services": ([_col("Name"), _col("Type"), _col("Cluster-IP"), _col("External-IP"),
                  _col("Port(s)"), _col("Age")], _svc_row),
    "namespaces": ([_col("Name"), _col("Status"), _col("Age")], _ns_row),
    "nodes": ([_col("Name"), _col("Status"), _col("Roles"), _col("Age"), _col("Version"),
               _col("Internal-IP", 1), _col("External-IP", 1), _col("OS-Image", 1),
               _col("Kernel-Version", 1), _col("Container-Runtime", 1)], _node_row),
}


def table(key: str, items: list[dict], resource_version: str, include_object: str) -> dict:
    columns, row_fn = _COLUMNS.get(key, ([_col("Name"), _col("Age")],
                                         lambda o: [o["metadata"]["name"], _age(o)]))
    rows = []
    for o in items:
        row = {"cells": row_fn(o)}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o.get("metadata", {})}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": columns, "rows": rows}
