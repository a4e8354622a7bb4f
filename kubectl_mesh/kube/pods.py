"""`Pod`: the few facts about a pod the commands need, taken from its JSON once."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

PROXY_CONTAINER = "istio-proxy"


@dataclass(frozen=True)
class Pod:
    """A pod as the commands see it. `ref` is `name.namespace`, the way istioctl names proxies."""

    name: str
    namespace: str
    ip: str
    containers: tuple[str, ...]  # app containers, plus native sidecars (restartable init containers)
    ready: bool
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}),
                                           hash=False)
    node: str = ""
    owner: str | None = None  # the controller, "Kind/name" (e.g. "ReplicaSet/catalog-5c99")
    phase: str = ""
    proxy_type: str = ""  # "sidecar", "router" (gateways) or "" without istio-proxy
    terminating: bool = False

    @property
    def ref(self) -> str:
        return f"{self.name}.{self.namespace}"

    @property
    def has_proxy(self) -> bool:
        return PROXY_CONTAINER in self.containers

    @classmethod
    def from_json(cls, obj: dict) -> Pod:
        meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
        containers = list(spec.get("containers") or [])
        # Native sidecars (Istio with ENABLE_NATIVE_SIDECARS) are init containers that restart.
        containers += [c for c in spec.get("initContainers") or []
                       if c.get("restartPolicy") == "Always"]
        names = tuple(c.get("name", "") for c in containers)
        proxy = next((c for c in containers if c.get("name") == PROXY_CONTAINER), None)
        proxy_type = ""
        if proxy is not None:
            proxy_type = "router" if "router" in (proxy.get("args") or []) else "sidecar"
        owner = next((f"{o.get('kind')}/{o.get('name')}" for o in meta.get("ownerReferences") or []
                      if o.get("controller")), None)
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or [])
        return cls(
            name=meta.get("name", ""), namespace=meta.get("namespace", ""),
            ip=status.get("podIP") or "", containers=names, ready=ready,
            labels=MappingProxyType(dict(meta.get("labels") or {})),
            annotations=MappingProxyType(dict(meta.get("annotations") or {})),
            node=spec.get("nodeName") or "", owner=owner, phase=status.get("phase") or "Pending",
            proxy_type=proxy_type, terminating=bool(meta.get("deletionTimestamp")),
        )


def controller_uid(obj: dict) -> str | None:
    """The uid of the object's controlling owner, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None
