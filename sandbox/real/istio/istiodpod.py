"""istiod as a pod: the sandbox kubelet runs the pod of istiod's Deployment, as `istioctl
install` applies it (`install(..., istiod="pod")`), with the real pilot-discovery for the
pilot image.

The `discovery` container of the istio-discovery chart (templates/deployment.yaml: image
`<hub>/pilot:<tag>`, the dev build's `registry.istio.io/testing/pilot:latest`; args
`discovery --monitoringAddr=:15014 ...`) is run as the image would run it
(pilot/docker/Dockerfile.pilot: ENTRYPOINT /usr/local/bin/pilot-discovery, USER 1337:1337, no
WORKDIR, so /), in the pod's network namespace (every port its own), with:
- the env the kubelet gives it (`sidecar.container_environment`: fieldRef, resourceFieldRef),
  plus the `kubernetes` Service's KUBERNETES_SERVICE_HOST/PORT, which a kubelet gives every
  container (pkg/kubelet/kubelet_pods.go `getServiceEnvVarMap`: the master service is always
  included), here 10.96.0.1:443, DNAT'ed to the API server (podnetwork.py);
- its volumes at their mountPaths (`sandbox.real.kubelet.mounts`), among them the projected
  `kube-api-access-*` volume the ServiceAccount admission plugin adds, at
  /var/run/secrets/kubernetes.io/serviceaccount: token, ca.crt, namespace. No kubeconfig is
  given: its KUBECONFIG (/var/run/secrets/remote/config, the optional istio-kubeconfig
  secret) is absent, so client-go falls back to the in-cluster config (k8s.io/client-go
  tools/clientcmd/merged_client_builder.go `DeferredLoadingClientConfig.ClientConfig`:
  an empty config and `inClusterClientConfig.Possible()` → rest.InClusterConfig, which reads
  that token and ca.crt and dials KUBERNETES_SERVICE_HOST:PORT).

Its serving certificate names `istiod.istio-system.svc` (pilot/pkg/bootstrap/server.go
`getDNSNames`), the name the API server calls the webhooks by (`service:` resolved to the
ClusterIP, routed to the pod by the kubelet's service proxy) and the name sidecars dial for
xDS and certificates, resolved by the kubelet's cluster DNS: their pilot-agent runs with the
injected environment unchanged, so discoveryAddress is the mesh default
(pkg/config/mesh/mesh.go `DefaultProxyConfig`: istiod.istio-system.svc:15012) and CA_ADDR the
injection template's (files/injection-template.yaml: istiod.<istioNamespace>.svc:15012)."""

from __future__ import annotations

import json
import pathlib
import sys

from ..controlplane import locate_binaries
from ..kubelet import images
from ..kubelet.podnetwork import SERVICE_IP, SERVICE_PORT
from ...securitycontext import run_as
from .sidecar import container_environment

# The pilot image: the dev build's hub (global.hub unset: docs/real-istio.md finding 10) and
# the release hub's.
PILOT_REPOSITORIES = ("testing/pilot", "istio/pilot")
ENTRYPOINT = "/usr/local/bin/pilot-discovery"
IMAGE_USER = 1337  # Dockerfile.pilot `USER 1337:1337`
MOUNTS = pathlib.Path(__file__).resolve().parent.parent / "kubelet" / "mounts.py"


def is_pilot(image: str) -> bool:
    return images.repository(image) in PILOT_REPOSITORIES


def discovery_program(binaries: pathlib.Path | None = None):
    """For `Kubelet(program=...)`: the pilot image's containers as the real pilot-discovery,
    in pods with a network namespace of their own; None for anything else."""
    def program(pod: dict, address, directory: pathlib.Path, container: dict,
                env: dict[str, str]) -> tuple[list[str], dict] | None:
        if not is_pilot(container.get("image") or "") or not address.netns:
            return None
        binary = str((binaries or locate_binaries()) / "pilot-discovery")
        command = [binary if c == ENTRYPOINT else c
                   for c in container.get("command") or [ENTRYPOINT]]
        environment = container_environment(pod, container, address.ip, env.get("HOST_IP", ""), {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/",
            "HOSTNAME": pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": SERVICE_IP, "KUBERNETES_SERVICE_PORT": str(SERVICE_PORT),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(SERVICE_PORT)})
        directories = json.loads(env.get("SANDBOX_MOUNTS") or "{}")
        binds = []
        for m in container.get("volumeMounts") or []:
            source = directories.get(m["mountPath"])
            if source is not None:
                readonly = ":ro" if m.get("readOnly") else ""
                binds += ["--bind", f"{source}={m['mountPath']}{readonly}"]
        image_user = {"runAsUser": IMAGE_USER, "runAsGroup": IMAGE_USER}
        pod_context = (pod.get("spec") or {}).get("securityContext") or {}
        as_image = pod | {"spec": pod["spec"] | {"securityContext": image_user | pod_context}}
        return [sys.executable, str(MOUNTS), "--scratch", str(directory / ".mounts"),
                *binds, "--workdir", "/", "--",
                *run_as(as_image, container), *command, *container.get("args", [])], environment
    return program
