"""The sandbox as the node's kubelet for a real API server (`sandbox.real.controlplane`).

`Kubelet(control_plane).start()` registers the Node and keeps its Lease fresh (`node`),
runs the pods the scheduler binds to it as local processes with the pod runtime of the API
double (`sandbox.runtime.Runtime` over `podsource.PodSource`), and serves the kubelet API on
port 10250 (`server`). With `pod_network="netns"` each pod gets a network namespace of its own
on the node's bridge (`podnetwork`), Services' ClusterIPs are routed to their ready endpoints
as kube-proxy routes them (`serviceproxy`) and pods resolve `<svc>.<ns>.svc.cluster.local`
through cluster DNS on the bridge's gateway (`dns`); with "loopback" each pod is an address of
the control plane's leased 127.N network in the host's namespace.

With `websockets` (the default, as a 1.37 kubelet whose gate ExtendWebSocketsToKubelet is
on) the Node declares that feature in status.declaredFeatures, and the API server passes
kubectl's WebSocket exec/attach/port-forward through to the kubelet API unchanged
(pkg/registry/core/pod/rest/subresources.go `checkNodeSupportsWebsockets`); without it the
API server translates them to SPDY towards the kubelet.

Its identity is a client certificate from the cluster CA for `system:node:<name>` in
`system:nodes`, so the API server's Node authorizer and NodeRestriction admission judge
everything it does, as for a real kubelet."""

from __future__ import annotations

from ...behaviour import Behaviours
from ...runtime import Runtime
from . import images
from .client import NodeClient
from ...nodestatus import KUBELET_PORT
from ..controlplane import StartedOnEnter
from .node import NodeAgent
from .podnetwork import POD_NETWORKS, PodNetwork, default_pod_network
from .podsource import PodSource
from .dns import ClusterDNS
from .serviceproxy import ServiceProxy
from .services import ClusterServices
from .server import KubeletServer
from .serviceenv import kubernetes_service_env
from .volumes import PodVolumes

EXTEND_WEBSOCKETS = "ExtendWebSocketsToKubelet"


class Kubelet(StartedOnEnter):
    def __init__(self, control_plane, name: str = "sandbox-node", *,
                 status_interval: float = 60.0, websockets: bool = True,
                 state_dir=None, behaviours: Behaviours | None = None, pod_kubeconfig=None,
                 refuse_websocket=lambda: False, image_known=images.known,
                 proxy_command=None, pod_network: str | None = None, program=None):
        """`state_dir`: where pods' directories, logs and cgroup records go (default
        `<control plane state>/kubelet`); `behaviours`: the scenario's app behaviours;
        `pod_kubeconfig`: the kubeconfig the sandbox istiod pods are given (default none:
        they read the cluster as in-cluster clients do, through the `kubernetes` Service's
        variables, `serviceenv`, and their service account's token and ca.crt);
        `refuse_websocket()`: true while the kubelet API is to refuse WebSocket streams (as
        the double's `<state>/refuse-websocket` makes its API server refuse them);
        `image_known(image)`: which images it can run; `proxy_command`: how it runs an
        istio-proxy container (`sandbox.runtime.Runtime`; default the sandbox's Envoy);
        `program`: how it runs other containers' images (`Runtime`'s `program`);
        `pod_network`: "netns" (a network namespace per pod) or "loopback" (default
        $SANDBOX_POD_NETWORK, else `podnetwork.default_pod_network()`: netns as root)."""
        self.image_known = image_known
        self.proxy_command = proxy_command
        self.program = program
        pod_network = pod_network or default_pod_network()
        if pod_network not in POD_NETWORKS:
            raise ValueError(f"pod_network must be one of {POD_NETWORKS}, not {pod_network!r}")
        self.pod_network = pod_network
        self.network: PodNetwork | None = None
        self.refuse_websocket = refuse_websocket
        self.cp = control_plane
        self.name = name
        self.status_interval = status_interval
        self.websockets = websockets
        self.state_dir = state_dir or control_plane.state_dir / "kubelet"
        self.behaviours = behaviours or Behaviours([])
        self.pod_kubeconfig = pod_kubeconfig
        self.node: NodeAgent | None = None
        self.pods: PodSource | None = None
        self.runtime: Runtime | None = None
        self.server: KubeletServer | None = None
        self.volumes: PodVolumes | None = None
        self.services: ClusterServices | None = None  # netns only: kube-proxy and DNS
        self.service_proxy: ServiceProxy | None = None
        self.dns: ClusterDNS | None = None

    def start(self) -> "Kubelet":
        cp, name = self.cp, self.name
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        identity = cp.ca.issue(f"kubelet-client-{name}", f"system:node:{name}",
                               organizations=("system:nodes",))
        serving = cp.ca.issue(f"kubelet-serving-{name}", f"system:node:{name}",
                              server_names=(cp.address, name), client=False)
        client = NodeClient(cp.server, cp.ca.pair, identity)
        self.node = NodeAgent(client, name, cp.address, self.state_dir,
                              status_interval=self.status_interval,
                              declared=(EXTEND_WEBSOCKETS,) if self.websockets else ()).start()
        self.pods = PodSource(client, name)
        addresses = cp.addresses
        if self.pod_network == "netns":
            self.network = addresses = PodNetwork(cp.addresses, (cp.address, 6443)).start()
            self._start_service_network(cp)
        self.volumes = PodVolumes(client, self.state_dir).start()
        self.runtime = Runtime(self.pods, self.state_dir, self.pod_kubeconfig, self.behaviours,
                               allow_websocket=lambda: self.websockets
                               and not self.refuse_websocket(),
                               node_name=name, host_ip=cp.address, addresses=addresses,
                               image_known=self.image_known,
                               on_pod_stopped=self.pods.pod_stopped, volumes=self.volumes,
                               proxy_command=self.proxy_command, program=self.program,
                               service_env=kubernetes_service_env((cp.address, 6443)))
        self.server = KubeletServer(cp.address, KUBELET_PORT, self.runtime,
                                    ca_file=str(cp.ca.pair.cert), cert_file=str(serving.cert),
                                    key_file=str(serving.key)).start()
        self.pods.start()
        return self

    def _start_service_network(self, cp) -> None:
        """ClusterIPs routed to ready endpoints and cluster DNS on the bridge's gateway, from
        the Services and EndpointSlices seen as `system:kube-proxy` (bound to the
        system:node-proxier ClusterRole by the API server's bootstrap policy)."""
        proxy_identity = cp.ca.issue("kube-proxy", "system:kube-proxy")
        self.services = ClusterServices(NodeClient(cp.server, cp.ca.pair, proxy_identity))
        self.service_proxy = ServiceProxy(self.services, self.network.bridge,
                                          f"{self.network.subnet}.0/24").start()
        self.dns = ClusterDNS(self.services, self.network.gateway).start()
        self.services.start()

    def stop(self) -> None:
        """Stop watching, end every pod's processes, close the kubelet API and the beats."""
        if self.pods is not None:
            self.pods.stop()
        if self.runtime is not None:
            self.runtime.stop_all()
        if self.server is not None:
            self.server.stop()
        if self.node is not None:
            self.node.stop()
        if self.volumes is not None:
            self.volumes.stop()
        for part in (self.dns, self.service_proxy, self.services):
            if part is not None:
                part.stop()
        self.dns = self.service_proxy = self.services = None
        if self.network is not None:
            self.network.release()  # every pod's namespace and veth, the bridge, the rules
        self.pods = self.runtime = self.server = self.node = self.volumes = None
        self.network = None
