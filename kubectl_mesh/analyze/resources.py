"""The objects analysis reads – from the cluster or from files – and the store that holds them,
indexed by kind and by namespace/name."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Sequence

# The kinds the analyzers read: kind -> (API path prefix, plural, namespaced).
KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "Pod": ("/api/v1", "pods", True),
    "Service": ("/api/v1", "services", True),
    "Secret": ("/api/v1", "secrets", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "VirtualService": ("/apis/networking.istio.io/v1", "virtualservices", True),
    "DestinationRule": ("/apis/networking.istio.io/v1", "destinationrules", True),
    "Gateway": ("/apis/networking.istio.io/v1", "gateways", True),
    "ServiceEntry": ("/apis/networking.istio.io/v1", "serviceentries", True),
    "Sidecar": ("/apis/networking.istio.io/v1", "sidecars", True),
    "PeerAuthentication": ("/apis/security.istio.io/v1", "peerauthentications", True),
    "AuthorizationPolicy": ("/apis/security.istio.io/v1", "authorizationpolicies", True),
    "RequestAuthentication": ("/apis/security.istio.io/v1", "requestauthentications", True),
    "MutatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1",
                                     "mutatingwebhookconfigurations", False),
    "ValidatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1",
                                       "validatingwebhookconfigurations", False),
}
ISTIO_GROUPS = ("networking.istio.io", "security.istio.io")
# Every kind Istio serves (istio/pkg/config/schema/collections): the ones analyze does not read
# are skipped quietly; any other kind in an istio.io group is a typo, and bad input.
ISTIO_KINDS = {
    "networking.istio.io": frozenset({"VirtualService", "DestinationRule", "Gateway",
                                      "ServiceEntry", "Sidecar", "EnvoyFilter", "WorkloadEntry",
                                      "WorkloadGroup", "ProxyConfig"}),
    "security.istio.io": frozenset({"PeerAuthentication", "AuthorizationPolicy",
                                    "RequestAuthentication"}),
    "telemetry.istio.io": frozenset({"Telemetry"}),
    "extensions.istio.io": frozenset({"WasmPlugin", "TrafficExtension"}),
}
# Kinds only a cluster has in a useful completeness: analyzers that read them do not run on
# files alone (istioctl skips them too: `--use-kube=false -v` lists them as skipped).
CLUSTER_KINDS = frozenset({"Namespace", "Pod", "Service", "Secret", "Deployment", "ConfigMap"})

SUPPRESS_ANNOTATION = "galley.istio.io/analyze-suppress"


class Document:
    """One YAML document of a file: its text and first line, composed into nodes only when a
    message needs a line number (most objects never do)."""

    def __init__(self, text: str, first_line: int, node: Any = None):
        self.text = text
        self.first_line = first_line  # 0-based line of the document's first line in the file
        self._node = node

    @property
    def node(self) -> Any:
        if self._node is None:
            import yaml

            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            self._node = yaml.compose(self.text, Loader=loader)
        return self._node


@dataclass
class Resource:
    """One object: kind, namespace/name, metadata and spec; `source` is the file it came from
    (None: the cluster), `document` its YAML document and `prefix` its path there (`items`, i
    inside a List), for line numbers."""

    kind: str
    namespace: str
    name: str
    obj: dict
    source: Optional[str] = None
    document: Optional[Document] = None
    prefix: tuple = ()

    @property
    def metadata(self) -> dict:
        metadata = self.obj.get("metadata")
        return metadata if isinstance(metadata, dict) else {}

    @functools.cached_property
    def labels(self) -> dict:
        """Label keys and values as strings (a file may say `version: 1`)."""
        return _string_map(self.metadata.get("labels"))

    @functools.cached_property
    def annotations(self) -> dict:
        return _string_map(self.metadata.get("annotations"))

    @property
    def spec(self) -> dict:
        spec = self.obj.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def friendly_name(self) -> str:
        return f"{self.kind} {self.full_name}"

    @property
    def comparator(self) -> str:
        return f"{self.kind}/{self.full_name}"

    def line_of(self, *path: Any) -> int:
        """The line of the field at `path` (keys and list indexes) in this object's file, 0 if
        there is none (cluster objects, or a path the YAML does not have)."""
        if self.document is None:
            return 0
        node = self.document.node
        line = 0
        for step in self.prefix + path:
            if node is None:
                return 0
            value = getattr(node, "value", None)
            if isinstance(step, int):
                if not isinstance(value, list) or not 0 <= step < len(value) \
                        or isinstance(value[0], tuple):
                    return 0
                node = value[step]
                line = node.start_mark.line + 1
            else:
                if not isinstance(value, list):
                    return 0
                for key, item in value:
                    if isinstance(key, tuple) or getattr(key, "value", None) != step:
                        continue
                    node, line = item, key.start_mark.line + 1
                    break
                else:
                    return 0
        return line + self.document.first_line if line else 0

    def document_line(self) -> int:
        """The line istioctl names for a message without a field line: the first line of the
        object's YAML document (the resource's origin, istio/pkg/config/analysis/diag)."""
        return self.document.first_line + 1 if self.document is not None else 0

    def name_line(self) -> int:
        if self.document is None:
            return 0
        return self.line_of("metadata", "name") or self.document.first_line + 1


class Store:
    """Objects by kind and by namespace/name; a later object with the same identity replaces
    the earlier one (files overlay the cluster)."""

    def __init__(self, mesh=None) -> None:
        from kubectl_mesh.analyze.meshconfig import MeshConfig

        self._by_kind: dict[str, dict[tuple[str, str], Resource]] = {}
        self.mesh = MeshConfig() if mesh is None else mesh  # the mesh config analyzers read

    def add(self, resource: Resource) -> None:
        self._by_kind.setdefault(resource.kind, {})[(resource.namespace, resource.name)] = resource

    def extend(self, resources: Iterable[Resource]) -> None:
        for resource in resources:
            self.add(resource)

    def get(self, kind: str, namespace: str, name: str) -> Optional[Resource]:
        return self._by_kind.get(kind, {}).get((namespace, name))

    def of(self, kind: str) -> list[Resource]:
        return list(self._by_kind.get(kind, {}).values())

    def kinds(self) -> set[str]:
        return {k for k, objects in self._by_kind.items() if objects}

    def __iter__(self) -> Iterator[Resource]:
        for objects in self._by_kind.values():
            yield from objects.values()

    def __len__(self) -> int:
        return sum(len(objects) for objects in self._by_kind.values())


def _string_map(value: Any) -> dict:
    if not isinstance(value, dict):
        return {}
    return {str(k): ("" if v is None else str(v)) for k, v in value.items()}


def selector_matches(selector: dict, labels: dict) -> bool:
    """A map selector (`{app: x}`) against labels; an empty selector matches everything."""
    return all(labels.get(k) == v for k, v in selector.items())


def scalar(value: Any) -> Any:
    """`value` if it is a string, number or bool (usable as a key), else None."""
    return value if isinstance(value, (str, int, float)) else None


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def strings(values: Sequence[Any]) -> list[str]:
    return [v for v in as_list(values) if isinstance(v, str)]
