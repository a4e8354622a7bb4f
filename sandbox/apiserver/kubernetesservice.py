"""The `default/kubernetes` Service every API server creates for itself."""

from __future__ import annotations

# The first address of the Service range (10.96.0.0/16 on both backends), which the API
# server reserves for this Service (pkg/controlplane/apiserver/options/options.go `ServiceIPRange`).
SERVICE_IP = "10.96.0.1"


def kubernetes_service(secure_port: int) -> dict:
    """The Service as the API server's bootstrap controller creates it
    (pkg/controlplane/controller/kubernetesservice/controller.go
    `CreateOrUpdateMasterServiceIfNeeded`, `createPortAndServiceSpec`: port 443 named https
    to the secure port, no selector) with the defaults the real one reads back with.

    No Endpoints or EndpointSlice go with it: the endpoint reconciler would write the API
    server's advertised address, and Endpoints/EndpointSlice validation refuses a loopback
    one (pkg/apis/core/validation `ValidateEndpointIP`), so the real backend runs with
    `--endpoint-reconciler-type=none` and has none either. The sandbox istiod gives the
    Service's cluster the API server's address instead (`sandbox.istiod.mesh`)."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "clusterIP": SERVICE_IP, "clusterIPs": [SERVICE_IP],
            "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                       "targetPort": secure_port}],
            "sessionAffinity": "None", "type": "ClusterIP",
        },
        "status": {"loadBalancer": {}},
    }
