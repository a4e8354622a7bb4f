"""Sidecar injection (istio/pkg/config/analysis/analyzers/injection/injection.go): namespaces
not labelled for injection (IST0102) and pods of injected namespaces without a proxy (IST0103)."""

from __future__ import annotations

from typing import Iterator

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Store, as_dict, as_list

ISTIO_SYSTEM = "istio-system"
# istio/pkg/kube/inject/initializer.go IgnoredNamespaces: never analyzed.
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease",
                                "local-path-storage"})
INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
DATAPLANE_MODE = "istio.io/dataplane-mode"


def injection(store: Store) -> Iterator[Message]:
    injected: set[str] = set()
    for ns in store.of("Namespace"):
        if ns.name == ISTIO_SYSTEM or ns.name in IGNORED_NAMESPACES:
            continue
        labels = ns.labels
        if labels.get(DATAPLANE_MODE) == "ambient":
            continue
        value = labels.get(INJECTION_LABEL)
        if not value and REVISION_LABEL not in labels:
            yield Message(msg.NAMESPACE_NOT_INJECTED, (ns.name, ns.name), ns, ns.name_line())
            continue
        if value == "enabled":
            injected.add(ns.name)
    for pod in store.of("Pod"):
        if pod.namespace not in injected:
            continue
        inject = pod.labels.get("sidecar.istio.io/inject",
                                pod.annotations.get("sidecar.istio.io/inject", ""))
        if str(inject).lower() == "false" or pod.spec.get("hostNetwork"):
            continue
        containers = as_list(pod.spec.get("containers")) + as_list(pod.spec.get("initContainers"))
        if not any(as_dict(c).get("name") == "istio-proxy" for c in containers):
            yield Message(msg.POD_MISSING_PROXY, (pod.full_name,), pod)
