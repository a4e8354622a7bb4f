"""Why a pod has no istio-proxy, from what the pod and its namespace say – the next step a user
needs instead of "enable sidecar injection" every time.

Istio's rules (pkg/kube/inject/webhook.go `injectRequired`, and the injector webhooks'
namespace/object selectors in manifests/charts/istio-control/istio-discovery): the pod's
`sidecar.istio.io/inject` label (or, older, annotation) wins over the namespace's
`istio-injection` label or `istio.io/rev`; pods in ambient mode (`istio.io/dataplane-mode:
ambient` on the pod or namespace) get no sidecar at all, their traffic goes through ztunnel.
"""

from __future__ import annotations

from typing import Mapping

INJECT = "sidecar.istio.io/inject"
DATAPLANE_MODE = "istio.io/dataplane-mode"
CONTROL_PLANE_APPS = ("istiod", "istio-cni-node", "ztunnel")


def why_no_sidecar(pod_name: str, namespace: str, labels: Mapping[str, str],
                   annotations: Mapping[str, str], ns_labels: Mapping[str, str] | None) -> str:
    """The most likely reason `pod_name` has no istio-proxy, with the next step. `ns_labels`
    None: the namespace could not be read (RBAC), so the namespace-level reasons are guesses."""
    explicit = labels.get(INJECT, annotations.get(INJECT))
    ns = dict(ns_labels or {})
    if labels.get("app") in CONTROL_PLANE_APPS or labels.get("istio") == "pilot":
        return (f"it is an Istio control-plane pod ({labels.get('app') or 'istiod'}), not a "
                "proxy; point at a workload or gateway instead")
    if labels.get(DATAPLANE_MODE) == "ambient" or \
            (ns.get(DATAPLANE_MODE) == "ambient" and explicit != "true"):
        return ("it is in ambient mode: no sidecar, its traffic goes through the node's ztunnel "
                "(and a waypoint, if any); inspect those instead")
    if explicit == "false":
        return (f"injection is turned off for it ({INJECT}: \"false\" on the pod); remove that "
                "and restart it to add the sidecar")
    injected_ns = ns.get("istio-injection") == "enabled" or "istio.io/rev" in ns
    if ns_labels is None:
        return (f"is sidecar injection enabled? kubectl label namespace {namespace} "
                "istio-injection=enabled, then restart the pod")
    if ns.get("istio-injection") == "disabled":
        return (f"namespace {namespace} has istio-injection=disabled; enable it and restart the "
                "pod")
    if injected_ns or explicit == "true":
        return ("injection is enabled for it, so it was created before that (or while the "
                f"injector was down): restart it, e.g. kubectl rollout restart of its workload "
                f"in namespace {namespace}")
    return (f"namespace {namespace} is not labelled for injection: kubectl label namespace "
            f"{namespace} istio-injection=enabled, then restart the pod")
