"""The Node object and its heartbeats, as a kubelet registers and renews them.

Registration (pkg/kubelet/kubelet_node_status.go `registerWithAPIServer` → `initialNode`):
create the Node with the kubelet's default labels (hostname, os, arch and their beta
twins), the controller-managed attach/detach annotation, and a status the node status setters
fill (`defaultNodeStatusFuncs`, pkg/kubelet/nodestatus/setters.go): addresses, capacity and
allocatable, nodeInfo, the kubelet's endpoint, and the MemoryPressure, DiskPressure,
PIDPressure and Ready conditions. An existing Node of that name is taken over.

Heartbeats: the node Lease in kube-node-lease (holderIdentity = the node, 40 s duration,
owned by the Node) renewed every quarter of its duration – 10 s (pkg/kubelet/kubelet.go
`nodeLeaseRenewIntervalFraction`, k8s.io/component-helpers/apimachinery/lease controller.go
`newLease`); the Node's status is posted again with a fresh lastHeartbeatTime every
`status_interval` (the kubelet's nodeStatusReportFrequency, 5 min by default, shorter here)."""

from __future__ import annotations

import datetime
import pathlib
import threading

from ...nodestatus import node_object, node_status
from .client import ApiStatus, NodeClient

LEASE_DURATION = 40
LEASE_NAMESPACE = "kube-node-lease"


def _now_micro() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeAgent:
    """Registers the Node, then renews its Lease and posts its status until stopped."""

    def __init__(self, client: NodeClient, name: str, address: str, state_dir: pathlib.Path,
                 *, lease_interval: float = LEASE_DURATION / 4, status_interval: float = 60.0,
                 declared: tuple[str, ...] = ()):
        self.client = client
        self.name = name
        self.address = address
        self.state_dir = state_dir
        self.lease_interval = lease_interval
        self.status_interval = status_interval
        self.declared = declared
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="kubelet-node")
        self.uid = ""

    def register(self) -> dict:
        node = node_object(self.name, self.address, self.state_dir, self.declared)
        try:
            created = self.client.request("POST", "/api/v1/nodes", node)
        except ApiStatus as e:
            if e.code != 409:
                raise
            created = self.client.request("GET", f"/api/v1/nodes/{self.name}")
        self.uid = created["metadata"]["uid"]
        self.post_status()
        self.renew_lease()
        return created

    def post_status(self) -> dict:
        """A strategic merge patch of the status, as `patchNodeStatus` sends it: no
        resourceVersion, so the node lifecycle controller's taints never make it conflict."""
        node = self.client.request("GET", f"/api/v1/nodes/{self.name}")
        status = node_status(self.address, self.name, self.state_dir,
                             (node.get("status") or {}).get("conditions"), self.declared)
        return self.client.request("PATCH", f"/api/v1/nodes/{self.name}/status",
                                   {"status": status},
                                   content_type="application/strategic-merge-patch+json")

    def renew_lease(self) -> dict:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_DURATION,
                "renewTime": _now_micro()}
        try:
            lease = self.client.request("GET", f"{path}/{self.name}")
        except ApiStatus as e:
            if e.code != 404:
                raise
            return self.client.request("POST", path, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE,
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                  "name": self.name, "uid": self.uid}]},
                "spec": spec})
        lease["spec"].update(spec)
        return self.client.request("PUT", f"{path}/{self.name}", lease)

    def start(self) -> "NodeAgent":
        self.register()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _beat(self) -> None:
        since_status = 0.0
        while not self._stop.wait(self.lease_interval):
            since_status += self.lease_interval
            try:
                self.renew_lease()
                if since_status >= self.status_interval:
                    self.post_status()
                    since_status = 0.0
            except (ApiStatus, OSError, ValueError):
                pass  # tried again at the next beat, as the lease controller does
