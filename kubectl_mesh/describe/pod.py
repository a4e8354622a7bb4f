"""The pod part of a description: its revision, ports, whether it is in the mesh and why not,
as istioctl's printPod (istioctl/pkg/describe/describe.go) reports them."""

from __future__ import annotations

import json
from typing import Callable, Optional

from kubectl_mesh.analyze.resources import Resource, as_dict, as_list
from kubectl_mesh.kube.injection import why_no_sidecar
from kubectl_mesh.kube.pods import PROXY_CONTAINER

PROXY_UID = 1337  # reserved for the sidecar (istio.io docs: application requirements)
REQUIREMENTS_URL = "https://istio.io/latest/docs/ops/deployment/requirements/"
# pkg/kube/labels/labels.go nameLabels / revisionLabels.
NAME_LABELS = ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app")
REVISION_LABELS = ("service.istio.io/canonical-revision", "app.kubernetes.io/version", "version")


def revision(pod: Resource) -> str:
    """GetRevisionFromPodAnnotation: `istio.io/rev`, else the injection status's revision."""
    annotations = pod.annotations
    if "istio.io/rev" in annotations:
        return annotations["istio.io/rev"]
    try:
        status = json.loads(annotations.get("sidecar.istio.io/status", ""))
    except ValueError:
        return ""
    value = status.get("revision") if isinstance(status, dict) else None
    return value if isinstance(value, str) else ""


def containers(pod: Resource) -> list[dict]:
    """The pod's containers and native sidecars (init containers that restart)."""
    spec = pod.spec
    out = [as_dict(c) for c in as_list(spec.get("containers"))]
    out += [as_dict(c) for c in as_list(spec.get("initContainers"))
            if as_dict(c).get("restartPolicy") == "Always"]
    return out


def is_meshed(pod: Resource) -> bool:
    """inject.FindSidecar: an istio-proxy container (or native sidecar)."""
    return any(c.get("name") == PROXY_CONTAINER for c in containers(pod))


def describe_pod(pod: Resource, ns_labels: Optional[dict], kname: Callable[[Resource], str],
                 ignore_unmeshed: bool = False) -> dict:
    """The pod section: name, revision, ports, phase, in the mesh or why not, and istioctl's
    warnings and suggestions."""
    ports, warnings, suggestions = [], [], []
    for c in as_list(pod.spec.get("containers")):
        c = as_dict(c)
        for p in as_list(c.get("ports")):
            p = as_dict(p)
            ports.append({"port": p.get("containerPort"), "protocol": p.get("protocol") or "TCP",
                          "container": c.get("name") or "", "name": p.get("name") or ""})
        if c.get("name") not in (PROXY_CONTAINER, "istio-operator") and \
                as_dict(c.get("securityContext")).get("runAsUser") == PROXY_UID:
            warnings.append("WARNING: User ID (UID) 1337 is reserved for the sidecar proxy.")
    status = as_dict(pod.obj.get("status"))
    phase = status.get("phase") or "Pending"
    meshed = is_meshed(pod)
    section = {"name": pod.name, "namespace": pod.namespace, "revision": revision(pod),
               "ports": ports, "phase": phase, "meshed": meshed, "notMeshedReason": None,
               "warnings": warnings, "suggestions": suggestions}
    if phase != "Running":
        return section
    for key, kind in (("containerStatuses", "Container"), ("initContainerStatuses", "Init Container")):
        for cs in as_list(status.get(key)):
            cs = as_dict(cs)
            if not cs.get("ready"):
                warnings.append(f"WARNING: Pod {kname(pod)} {kind} {cs.get('name')} NOT READY")
    if ignore_unmeshed:
        return section
    if not meshed:
        section["notMeshedReason"] = why_no_sidecar(pod.name, pod.namespace, pod.labels,
                                                    pod.annotations, ns_labels)
        return section
    if as_dict(pod.spec.get("securityContext")).get("runAsUser") == PROXY_UID:
        warnings.append("WARNING: User ID (UID) 1337 is reserved for the sidecar proxy.")
    if not any(k in pod.labels for k in NAME_LABELS):
        suggestions.append("Suggestion: add required service name label for Istio telemetry. "
                           f"See {REQUIREMENTS_URL}.")
    if not any(k in pod.labels for k in REVISION_LABELS):
        suggestions.append("Suggestion: add required service revision label for Istio "
                           f"telemetry. See {REQUIREMENTS_URL}.")
    return section
