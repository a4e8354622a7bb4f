"""The environment a kubelet gives every container for the `kubernetes` Service, from which
in-cluster clients find the API server (client-go rest.InClusterConfig reads
KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT).

The kubelet adds the master services of namespace `default` whatever the pod's
enableServiceLinks (pkg/kubelet/kubelet_pods.go `getServiceEnvVarMap`) and names them as
pkg/kubelet/envvars/envvars.go `FromServices` does: `<NAME>_SERVICE_HOST`, `_SERVICE_PORT`,
`_SERVICE_PORT_<PORT NAME>` and the Docker link variables. The `kubernetes` Service has one
port, 443, named `https`."""

from __future__ import annotations

from ...network import PodAddress
from .podnetwork import SERVICE_IP, SERVICE_PORT


def service_env(host: str, port: int, name: str = "kubernetes",
                port_name: str = "https") -> dict[str, str]:
    """The variables of a Service `name` reached at host:port (envvars.go `FromServices`)."""
    prefix = name.upper().replace("-", "_")
    url = f"tcp://{host}:{port}"
    return {f"{prefix}_SERVICE_HOST": host, f"{prefix}_SERVICE_PORT": str(port),
            f"{prefix}_SERVICE_PORT_{port_name.upper().replace('-', '_')}": str(port),
            f"{prefix}_PORT": url, f"{prefix}_PORT_{port}_TCP": url,
            f"{prefix}_PORT_{port}_TCP_PROTO": "tcp", f"{prefix}_PORT_{port}_TCP_PORT": str(port),
            f"{prefix}_PORT_{port}_TCP_ADDR": host}


def kubernetes_service_env(api_address: tuple[str, int]):
    """`env(address)` for a pod at `address`: in a network namespace of its own, the
    Service's ClusterIP (DNAT'ed on the bridge to the API server: `podnetwork`); in the
    host's namespace (`loopback` pods, hostNetwork pods), where no kube-proxy rule turns the
    ClusterIP into the API server, the API server's own address."""
    def env(address: PodAddress) -> dict[str, str]:
        if address.netns:
            return service_env(SERVICE_IP, SERVICE_PORT)
        return service_env(*api_address)
    return env
