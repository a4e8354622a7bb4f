"""annotations.K8sAnalyzer (istio/pkg/config/analysis/analyzers/annotations/annotations.go):
`*istio.io/*` annotations on Namespaces, Services, Pods and Deployments that Istio does not know (IST0108),
that are deprecated (IST0135) or that belong on another kind (IST0107).

The registry is istio.io/api's annotation/annotations.yaml (data/annotations.yaml, the source
of the `annotation` Go package istioctl compiles in), read once per run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterator

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Store

# maturity.AlwaysIgnoredAnnotations: set by istiod and controllers, never reported
ALWAYS_IGNORED = frozenset({"sidecar.istio.io/status", "gateway.istio.io/controller-version",
                            "istio.io/rev"})
SIDECAR_INJECT = "sidecar.istio.io/inject"
# deprecationExtraMessages
DEPRECATION_EXTRA = {SIDECAR_INJECT: ' in favor of the "sidecar.istio.io/inject" label'}
ANY = "Any"
# annotation.ResourceTypes.String(): the kinds an annotation may name
RESOURCE_TYPES = ("Any", "AuthorizationPolicy", "Gateway", "GatewayClass", "Ingress",
                  "Namespace", "Pod", "Service", "ServiceEntry", "WorkloadEntry")
ANALYZED_KINDS = ("Namespace", "Service", "Pod", "Deployment")


@dataclass(frozen=True)
class Annotation:
    name: str
    deprecated: bool
    resources: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, Annotation]:
    import importlib.resources

    import yaml

    text = importlib.resources.files("kubectl_mesh.analyze").joinpath(
        "data/annotations.yaml").read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = {}
    for item in yaml.load(text, Loader=loader)["annotations"]:
        resources = tuple(r for r in item.get("resources") or () if r in RESOURCE_TYPES)
        out[item["name"]] = Annotation(item["name"], bool(item.get("deprecated")), resources)
    return out


def _istio_annotation(name: str) -> bool:
    """istioAnnotation: in an `*istio.io` prefix, or the documented ingress class."""
    return name == "kubernetes.io/ingress.class" or name.split("/")[0].endswith("istio.io")


def k8s_annotations(store: Store) -> Iterator[Message]:
    known = registry()
    for kind in ANALYZED_KINDS:
        for res in store.of(kind):
            for name in res.annotations:
                if not _istio_annotation(name) or name in ALWAYS_IGNORED:
                    continue
                line = res.line_of("metadata", "annotations", name)
                definition = known.get(name)
                if definition is None:
                    yield Message(msg.UNKNOWN_ANNOTATION, (name,), res, line)
                    continue
                if definition.deprecated and not (
                        name == SIDECAR_INJECT and SIDECAR_INJECT in res.labels):
                    yield Message(msg.DEPRECATED_ANNOTATION,
                                  (name, DEPRECATION_EXTRA.get(name, "")), res, line)
                if ANY in definition.resources:
                    continue
                if kind not in definition.resources:
                    yield Message(msg.MISPLACED_ANNOTATION,
                                  (name, ", ".join(definition.resources)), res, line)
