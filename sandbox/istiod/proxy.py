"""Who a connected Envoy is: parsed from its node id and metadata, enriched from its Pod."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.istiod.mesh import Mesh, labels_of

PROXY_TYPES = ("sidecar", "router")


class BadNodeId(ValueError):
    """The Envoy node id is not `<type>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`."""


@dataclass(frozen=True)
class Proxy:
    type: str          # "sidecar" or "router"
    ip: str
    name: str          # pod name
    namespace: str
    labels: dict = field(default_factory=dict, hash=False)
    istio_version: str = ""
    envoy_version: str = ""

    @property
    def id(self) -> str:
        """The id istiod uses in syncz and `?proxyID=`: `<pod>.<namespace>`."""
        return f"{self.name}.{self.namespace}"

    @classmethod
    def from_node_id(cls, node_id: str, metadata: dict | None = None,
                     envoy_version: str = "") -> Proxy:
        parts = node_id.split("~")
        if len(parts) != 4 or parts[0] not in PROXY_TYPES or "." not in parts[2]:
            raise BadNodeId(f"bad node id {node_id!r}: want "
                            "'sidecar|router~<ip>~<pod>.<ns>~<ns>.svc.cluster.local'")
        name, _, namespace = parts[2].rpartition(".")
        metadata = metadata or {}
        labels = metadata.get("LABELS") or {}
        return cls(type=parts[0], ip=parts[1], name=name, namespace=namespace,
                   labels=dict(labels) if isinstance(labels, dict) else {},
                   istio_version=str(metadata.get("ISTIO_VERSION", "")),
                   envoy_version=envoy_version)

    def with_pod(self, mesh: Mesh) -> Proxy:
        """The Pod object is the truth for labels (they may change after Envoy started)."""
        pod = mesh.pod(self.name, self.namespace)
        if pod is None:
            return self
        return Proxy(type=self.type, ip=self.ip, name=self.name, namespace=self.namespace,
                     labels=dict(labels_of(pod)), istio_version=self.istio_version,
                     envoy_version=self.envoy_version)
