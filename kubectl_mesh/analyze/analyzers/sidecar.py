"""sidecar.SelectorAnalyzer (istio/pkg/config/analysis/analyzers/sidecar/selector.go): a
workload selector matching no pod in its namespace (IST0101), pods selected by several Sidecars
(IST0110) and several Sidecars without a selector in one namespace (IST0111). Pods in ambient
mode have no sidecar: the real analyzer reports an ineffective policy there instead, which
this one leaves out (no conflict is reported for them)."""

from __future__ import annotations

from typing import Iterator

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.analyzers.gateway import selector_string
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Resource, Store, as_dict, selector_matches

AMBIENT = "ambient"
DATAPLANE_MODE = "istio.io/dataplane-mode"
REDIRECTION = "ambient.istio.io/redirection"


def _pod_ambient(pod: Resource) -> bool:
    """util.PodInAmbientMode (analyzers/util/in_mesh.go): the CNI marked its redirection."""
    return pod.annotations.get(REDIRECTION) == "enabled"


def _namespace_ambient(ns: Resource) -> bool:
    """util.NamespaceInAmbientMode: the dataplane-mode label, unless injection is on."""
    if ns.labels.get("istio-injection") == "enabled" or ns.labels.get("istio.io/rev"):
        return False
    return ns.labels.get(DATAPLANE_MODE) == AMBIENT


def selectors(store: Store) -> Iterator[Message]:
    pods_by_ns: dict[str, list[Resource]] = {}
    for pod in store.of("Pod"):
        pods_by_ns.setdefault(pod.namespace, []).append(pod)
    ambient_ns = {ns.name for ns in store.of("Namespace") if _namespace_ambient(ns)}
    namespace_wide: dict[str, list[Resource]] = {}
    by_pod: dict[tuple[str, str], list[Resource]] = {}
    ambient_pods: set[tuple[str, str]] = set()
    for sc in store.of("Sidecar"):
        labels = {str(k): str(v) for k, v in
                  as_dict(as_dict(sc.spec.get("workloadSelector")).get("labels")).items()}
        if not labels:
            namespace_wide.setdefault(sc.namespace, []).append(sc)
            continue
        found = False
        for pod in pods_by_ns.get(sc.namespace, []):
            if selector_matches(labels, pod.labels):
                found = True
                by_pod.setdefault((pod.namespace, pod.name), []).append(sc)
                if _pod_ambient(pod):
                    ambient_pods.add((pod.namespace, pod.name))
        if not found:
            first = sorted(labels)[0]
            yield Message(msg.REFERENCED_RESOURCE_NOT_FOUND, ("selector", selector_string(labels)),
                          sc, sc.line_of("spec", "workloadSelector", "labels", first))
    for (namespace, pod), sidecars in by_pod.items():
        if len(sidecars) < 2 or (namespace, pod) in ambient_pods:
            continue
        names = sorted(sc.name for sc in sidecars)
        for sc in sidecars:
            yield Message(msg.CONFLICTING_SIDECAR_WORKLOAD_SELECTORS, (names, namespace, pod), sc,
                          sc.line_of("metadata", "name"))
    for namespace, sidecars in namespace_wide.items():
        if len(sidecars) < 2 or namespace in ambient_ns:
            continue
        names = sorted(sc.name for sc in sidecars)
        for sc in sidecars:
            yield Message(msg.MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS, (names, namespace), sc)
