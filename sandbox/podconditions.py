"""The pod conditions a kubelet writes, from its containers' statuses.

As Kubernetes 1.37 generates them (pkg/kubelet/kubelet_pods.go `generateAPIPodStatus`, the
generators in pkg/kubelet/status/generate.go) and its status manager stamps them
(pkg/kubelet/status/status_manager.go `updateLastTransitionTime`): conditions the kubelet
does not own are kept, then PodReadyToStartContainers, Initialized, Ready, ContainersReady
and PodScheduled follow in that order, each with the pod's generation as observedGeneration
(PodObservedGenerationTracking, GA in 1.35); a condition keeps its lastTransitionTime while
its status stays."""

from __future__ import annotations

KUBELET_OWNED = ("PodScheduled", "Ready", "Initialized", "ContainersReady",
                 "PodReadyToStartContainers", "PodResizeInProgress", "PodResizePending")


def _go_list(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"  # fmt's %s of a []string


def _restartable(spec: dict) -> bool:
    return spec.get("restartPolicy") == "Always"  # a sidecar (native) init container


def initialized(init_specs: list[dict], init_statuses: dict[str, dict],
                statuses: list[dict], phase: str) -> tuple[str, str, str]:
    """(status, reason, message) of Initialized (`GeneratePodInitializedCondition`)."""
    unknown = [s["name"] for s in init_specs if s["name"] not in init_statuses]
    incomplete = []
    for s in init_specs:
        st = init_statuses.get(s["name"])
        if st is not None and not (st.get("started") if _restartable(s) else st.get("ready")):
            incomplete.append(s["name"])
    if phase == "Succeeded" and not unknown:
        return "True", "PodCompleted", ""
    if any(st.get("started") or "waiting" not in st.get("state", {}) for st in statuses):
        return "True", "", ""  # a regular container has started
    messages = ([f"containers with unknown status: {_go_list(unknown)}"] if unknown else []) + \
        ([f"containers with incomplete status: {_go_list(incomplete)}"] if incomplete else [])
    if messages:
        return "False", "ContainersNotInitialized", ", ".join(messages)
    return "True", "", ""


def containers_ready(init_specs: list[dict], init_statuses: dict[str, dict],
                     statuses: list[dict], phase: str) -> tuple[str, str, str]:
    """(status, reason, message) of ContainersReady (`GenerateContainersReadyCondition`)."""
    if phase == "Succeeded":
        return "False", "PodCompleted", ""
    if phase == "Failed":
        return "False", "PodFailed", ""
    unready = [s["name"] for s in init_specs
               if _restartable(s) and not (init_statuses.get(s["name"]) or {}).get("ready")]
    unready += [st["name"] for st in statuses if not st.get("ready")]
    if unready:
        return "False", "ContainersNotReady", f"containers with unready status: {_go_list(unready)}"
    return "True", "", ""


def pod_conditions(old: list[dict], generation: int | None, phase: str, init_specs: list[dict],
                   init_statuses: list[dict], statuses: list[dict], now: str) -> list[dict]:
    by_name = {st["name"]: st for st in init_statuses}
    ready = containers_ready(init_specs, by_name, statuses, phase)
    pod_ready = ready if ready[0] != "True" else ("True", "", "")
    if phase in ("Succeeded", "Failed"):
        pod_ready = ("False", "PodCompleted" if phase == "Succeeded" else "PodFailed", "")
    owned = [("PodReadyToStartContainers", ("True", "", "")),  # the pod's address exists
             ("Initialized", initialized(init_specs, by_name, statuses, phase)),
             ("Ready", pod_ready), ("ContainersReady", ready),
             ("PodScheduled", ("True", "", ""))]
    before = {c.get("type"): c for c in old}
    out = [c for c in old if c.get("type") not in KUBELET_OWNED]
    for kind, (status, reason, message) in owned:
        previous = before.get(kind) or {}
        since = previous.get("lastTransitionTime") if previous.get("status") == status else None
        condition = {"type": kind, "status": status, "lastProbeTime": None,
                     "lastTransitionTime": since or now}
        if generation:
            condition["observedGeneration"] = generation
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        out.append(condition)
    return out
