"""Who a connected Envoy is: parsed from its node id and metadata, enriched from its Pod."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sandbox.istiod.mesh import Mesh, labels_of

PROXY_TYPES = ("sidecar", "router")
# Node metadata of the sandbox's own (no Istio proxy sets it): the sandbox's bootstrap
# (bootstrap.py `render_bootstrap`) says "true" when the pod has a network namespace of its
# own, where istio-init's iptables may capture its traffic as on a real node.
OWN_NETWORK_METADATA = "SANDBOX_OWN_NETWORK"


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
    # Metadata istiod's debug types look at (pilot/pkg/model/context.go NodeMetadata):
    # a node without PROXY_CONFIG is not a proxy (e.g. istioctl's own debug stream) and is
    # left out of syncz; NAMESPACE and SERVICE_ACCOUNT are checked against the caller's
    # identity on the TLS port (pilot/pkg/xds/auth.go `checkConnectionIdentity`).
    is_proxy: bool = True
    config_namespace: str = ""
    service_account: str = ""
    cluster_id: str = ""
    # in a network namespace of its own (OWN_NETWORK_METADATA): listeners on the wildcard,
    # inbound traffic as iptables redirects it; else on the host's shared loopback
    own_network: bool = False

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
                   envoy_version=envoy_version, is_proxy="PROXY_CONFIG" in metadata,
                   config_namespace=str(metadata.get("NAMESPACE") or namespace),
                   service_account=str(metadata.get("SERVICE_ACCOUNT") or ""),
                   cluster_id=str(metadata.get("CLUSTER_ID") or ""),
                   own_network=str(metadata.get(OWN_NETWORK_METADATA)) == "true")

    def with_pod(self, mesh: Mesh) -> Proxy:
        """The Pod object is the truth for labels (they may change after Envoy started)."""
        pod = mesh.pod(self.name, self.namespace)
        if pod is None:
            return self
        return dataclasses.replace(self, labels=dict(labels_of(pod)))
