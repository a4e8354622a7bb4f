"""auth.AuthorizationPoliciesAnalyzer (istio/pkg/config/analysis/analyzers/authz/
authorizationpolicies.go): a policy whose selector matches no pod in the mesh, or a
namespace-wide one in a namespace without mesh pods (IST0127); a `from.source.namespaces` /
`notNamespaces` entry that names no existing namespace (IST0101, `*` prefix/suffix wildcards
as namespaceMatch has them)."""

from __future__ import annotations

from typing import Iterator, Optional

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.analyzers.gateway import selector_string
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Resource, Store, as_dict, as_list, strings

PROXY = "istio-proxy"
INJECT = "sidecar.istio.io/inject"


def pod_in_mesh(pod: Resource, namespaces: dict[str, Resource]) -> bool:
    """util.PodInMesh: an istio-proxy container (or init container) with an image, else the
    inject label, else the annotation, else the namespace's istio-injection label; or ambient
    (util.PodInAmbientMode)."""
    containers = [as_dict(c) for key in ("containers", "initContainers")
                  for c in as_list(pod.spec.get(key))]
    if any(c.get("name") == PROXY and c.get("image") for c in containers):
        return True
    if pod.annotations.get("ambient.istio.io/redirection") == "enabled":
        return True
    for source in (pod.labels, pod.annotations):
        if INJECT in source:
            return source[INJECT] == "true"
    namespace = namespaces.get(pod.namespace)
    return namespace is not None and namespace.labels.get("istio-injection") == "enabled"


def namespace_match(namespace: str, expression: str) -> bool:
    if expression == "*":
        return True
    if expression.startswith("*"):
        return namespace.endswith(expression[1:])
    if expression.endswith("*"):
        return namespace.startswith(expression[:-1])
    return namespace.lower() == expression.lower()


def authorization_policies(store: Store) -> Iterator[Message]:
    namespaces = {ns.name: ns for ns in store.of("Namespace")}
    mesh_pods: dict[str, list[dict]] = {}
    for pod in store.of("Pod"):
        if pod_in_mesh(pod, namespaces):
            mesh_pods.setdefault(pod.namespace, []).append(pod.labels)
    root = store.mesh.root_namespace
    for ap in store.of("AuthorizationPolicy"):
        selector = _selector(ap)
        if ap.namespace == root:
            if selector is not None and not any(
                    _matches(selector, labels) for pods in mesh_pods.values() for labels in pods):
                yield Message(msg.NO_MATCHING_WORKLOADS_FOUND, (selector_string(selector),), ap)
        elif selector is None:
            if not mesh_pods.get(ap.namespace):
                yield Message(msg.NO_MATCHING_WORKLOADS_FOUND, ("",), ap)
        elif not any(_matches(selector, labels) for labels in mesh_pods.get(ap.namespace, [])):
            yield Message(msg.NO_MATCHING_WORKLOADS_FOUND, (selector_string(selector),), ap)
        yield from _missing_namespaces(ap, namespaces)


def _selector(ap: Resource) -> Optional[dict]:
    selector = ap.spec.get("selector")
    if not isinstance(selector, dict):
        return None
    return {str(k): str(v) for k, v in as_dict(selector.get("matchLabels")).items()}


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _missing_namespaces(ap: Resource, namespaces: dict[str, Resource]) -> Iterator[Message]:
    for i, rule in enumerate(as_list(ap.spec.get("rules"))):
        for j, source in enumerate(as_list(as_dict(rule).get("from"))):
            source = as_dict(as_dict(source).get("source"))
            for field in ("namespaces", "notNamespaces"):
                for k, expression in enumerate(strings(source.get(field))):
                    if not any(namespace_match(n, expression) for n in namespaces):
                        yield Message(msg.REFERENCED_RESOURCE_NOT_FOUND, ("namespace", expression),
                                      ap, ap.line_of("spec", "rules", i, "from", j, "source",
                                                     field, k))
