"""What Istio's sidecar injector adds to a pod, as its injection template renders it for the
default revision (manifests/charts/istio-control/istio-discovery/files/
injection-template.yaml with the chart's default values; pkg/kube/inject/inject.go
`injectPod`, `postProcessPod`): the API double's admission (`sandbox.controllers`) and the
real backend's injection webhook (`sandbox.real.injection`) both apply these parts, so the
stored pod has the shape a real cluster stores (checked against the pod real istiod injected
on the real API server: tests/real/test_real_istio.py, docs/real-istio.md finding 3).

With Istio CNI (`values.pilot.cni.enabled`) the node's CNI plugin sets up the capture and
the init container is `istio-validation`: `istio-iptables --run-validation
--skip-rule-apply` as UID 1337 without capabilities, so pods pass Pod Security "baseline".

Left out: the template's other optional paths (TPROXY, ambient, gateways, per-pod
annotations other than the inject/native ones), `istio-ca-crl`'s data (the volume is
optional, as in the template), resource settings from annotations, imagePullSecrets."""

from __future__ import annotations

import json
from dataclasses import dataclass

PROXY = "istio-proxy"
PROXY_INIT = "istio-init"
PROXY_IMAGE = "docker.io/istio/proxyv2:1.28.0"
REVISION = "default"
TRUST_DOMAIN = "cluster.local"
STATUS_PORT = 15020  # pilot-agent's status port, excluded from capture (`-d`)
HEALTH_PORT = 15021  # Envoy's /healthz/ready listener, the probes' port
RESOURCES = {"limits": {"cpu": "2", "memory": "1Gi"},
             "requests": {"cpu": "100m", "memory": "128Mi"}}  # global.proxy.resources


@dataclass(frozen=True)
class Injection:
    """The parts to add: labels and annotations (only those the pod lacks), the init
    containers to put first, the containers to append, the volumes to append."""
    labels: dict
    annotations: dict
    init_containers: list
    containers: list
    volumes: list


def _field(path: str) -> dict:
    return {"valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def _resource(name: str) -> dict:
    return {"valueFrom": {"resourceFieldRef": {"resource": name, "divisor": "1"}}}


def workload(pod: dict) -> tuple[str, str]:
    """(name, owner) as inject.go's DeploymentMeta and ISTIO_META_OWNER: a ReplicaSet's
    pod belongs to the Deployment named by the ReplicaSet without its pod-template-hash
    (pkg/kube/util.go `GetDeployMetaFromPod`); other owners by their own kind and name; a
    bare pod is its own workload."""
    meta = pod.get("metadata") or {}
    ns = meta.get("namespace", "")
    for ref in meta.get("ownerReferences") or []:
        if not ref.get("controller"):
            continue
        name, kind = ref.get("name", ""), ref.get("kind", "")
        template_hash = (meta.get("labels") or {}).get("pod-template-hash")
        if kind == "ReplicaSet" and template_hash and name.endswith("-" + template_hash):
            name = name[: -len(template_hash) - 1]
            return name, f"kubernetes://apis/apps/v1/namespaces/{ns}/deployments/{name}"
        if kind == "Job":
            return name, f"kubernetes://apis/batch/v1/namespaces/{ns}/jobs/{name}"
        group = "apps/v1" if kind in ("ReplicaSet", "StatefulSet", "DaemonSet") else "v1"
        return name, f"kubernetes://apis/{group}/namespaces/{ns}/{kind.lower()}s/{name}"
    name = meta.get("name") or (meta.get("generateName") or "").rstrip("-")
    return name, f"kubernetes://apis/v1/namespaces/{ns}/pods/{name}"


def _pod_ports(containers: list) -> str:
    """ISTIO_META_POD_PORTS as the template writes it: one port per line, each Go's JSON of
    the ContainerPort (name, hostPort, containerPort, protocol, hostIP; empty ones left
    out), a leading comma from the second on."""
    lines = []
    for c in containers:
        for p in c.get("ports") or []:
            port = {k: p[k] for k in ("name", "hostPort", "containerPort", "protocol", "hostIP")
                    if p.get(k)}
            lines.append(("," if lines else "") + json.dumps(port, separators=(",", ":")))
    return "[" + "".join("\n    " + line for line in lines) + "\n]"


def init_container(image: str = PROXY_IMAGE, cni: bool = False) -> dict:
    """istio-init: `pilot-agent istio-iptables` with the template's REDIRECT defaults; with
    CNI istio-validation, which only checks the rules the CNI plugin applied."""
    args = ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
            "-i", "*", "-x", "", "-b", "*", "-d", f"15090,{HEALTH_PORT},{STATUS_PORT}",
            "--log_output_level=default:info"]
    if cni:
        return {"name": "istio-validation", "image": image,
                "args": args + ["--run-validation", "--skip-rule-apply"],
                "resources": RESOURCES,
                "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                                    "capabilities": {"drop": ["ALL"]},
                                    "readOnlyRootFilesystem": True, "runAsGroup": 1337,
                                    "runAsNonRoot": True, "runAsUser": 1337}}
    return {
        "name": PROXY_INIT, "image": image, "args": args,
        "resources": RESOURCES,
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
                            "privileged": False, "runAsUser": 0, "runAsGroup": 0,
                            "runAsNonRoot": False, "readOnlyRootFilesystem": False,
                            "allowPrivilegeEscalation": False},
    }


def proxy_container(pod: dict, native: bool, image: str = PROXY_IMAGE) -> dict:
    """istio-proxy: `pilot-agent proxy sidecar`, its environment, probes and mounts; a
    native sidecar (restartPolicy Always) also gets the startup probe and the drain hook."""
    meta = pod.get("metadata") or {}
    app = [c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") != PROXY]
    name, owner = workload(pod)
    probe = {"httpGet": {"path": "/healthz/ready", "port": HEALTH_PORT, "scheme": "HTTP"},
             "timeoutSeconds": 3, "successThreshold": 1}
    container = {
        "name": PROXY, "image": image,
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                 "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error",
                 "--log_output_level=default:info"],
        "ports": [{"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"}],
        "env": [
            {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
            {"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"},
            {"name": "POD_NAME", **_field("metadata.name")},
            {"name": "POD_NAMESPACE", **_field("metadata.namespace")},
            {"name": "INSTANCE_IP", **_field("status.podIP")},
            {"name": "SERVICE_ACCOUNT", **_field("spec.serviceAccountName")},
            {"name": "HOST_IP", **_field("status.hostIP")},
            {"name": "ISTIO_CPU_LIMIT", **_resource("limits.cpu")},
            {"name": "PROXY_CONFIG", "value": "{}\n"},
            {"name": "ISTIO_META_POD_PORTS", "value": _pod_ports(app)},
            {"name": "ISTIO_META_APP_CONTAINERS", "value": ",".join(c["name"] for c in app)},
            {"name": "GOMEMLIMIT", **_resource("limits.memory")},
            {"name": "GOMAXPROCS", **_resource("limits.cpu")},
            {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
            {"name": "ISTIO_META_NODE_NAME", **_field("spec.nodeName")},
            {"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"},
            {"name": "ISTIO_META_WORKLOAD_NAME", "value": name},
            {"name": "ISTIO_META_OWNER", "value": owner},
            {"name": "ISTIO_META_MESH_ID", "value": TRUST_DOMAIN},
            {"name": "TRUST_DOMAIN", "value": TRUST_DOMAIN},
        ],
        "resources": RESOURCES,
        "volumeMounts": [
            {"name": "workload-socket", "mountPath": "/var/run/secrets/workload-spiffe-uds"},
            {"name": "credential-socket", "mountPath": "/var/run/secrets/credential-uds"},
            {"name": "workload-certs", "mountPath": "/var/run/secrets/workload-spiffe-credentials"},
            {"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio"},
            {"name": "istio-ca-crl", "mountPath": "/var/run/secrets/istio/crl"},
            {"name": "istio-data", "mountPath": "/var/lib/istio/data"},
            {"name": "istio-envoy", "mountPath": "/etc/istio/proxy"},
            {"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
            {"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
        ],
        "readinessProbe": dict(probe, periodSeconds=15, failureThreshold=4),
        "securityContext": {"capabilities": {"drop": ["ALL"]}, "privileged": False,
                            "runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": True,
                            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
    }
    if native:
        container["restartPolicy"] = "Always"
        container["startupProbe"] = dict(probe, periodSeconds=1, failureThreshold=600)
        container["lifecycle"] = {"preStop": {"exec": {"command": [
            "pilot-agent", "request", f"--debug-port={STATUS_PORT}", "POST", "drain"]}}}
    return container


VOLUMES = [
    {"name": "workload-socket", "emptyDir": {}},
    {"name": "credential-socket", "emptyDir": {}},
    {"name": "workload-certs", "emptyDir": {}},
    {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
    {"name": "istio-data", "emptyDir": {}},
    {"name": "istio-podinfo", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}},
        {"path": "annotations",
         "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"}}],
        "defaultMode": 420}},
    {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
        "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}],
        "defaultMode": 420}},
    {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert", "defaultMode": 420}},
    {"name": "istio-ca-crl", "configMap": {"name": "istio-ca-crl", "defaultMode": 420,
                                           "optional": True}},
]


def injection(pod: dict, native: bool, cni: bool = False, image: str = PROXY_IMAGE) -> Injection:
    """The parts the injector adds to `pod` (defaults already applied, as the API server
    applies them before mutating admission); `cni`: Istio CNI installed."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    app = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []
           if c.get("name") != PROXY]
    name, _ = workload(pod)
    new_labels = {
        "security.istio.io/tlsMode": "istio",
        "service.istio.io/canonical-name": (labels.get("app.kubernetes.io/name")
                                            or labels.get("app") or name)[:63].strip("-_."),
        "service.istio.io/canonical-revision": (labels.get("app.kubernetes.io/version")
                                                or labels.get("version") or "latest"),
    }
    inits = [init_container(image, cni)]
    containers = []
    if native:
        inits.append(proxy_container(pod, True, image))
    else:
        containers.append(proxy_container(pod, False, image))
    status = {"initContainers": [c["name"] for c in inits],
              "containers": [c["name"] for c in containers] or None,
              "volumes": [v["name"] for v in VOLUMES], "imagePullSecrets": None,
              "revision": REVISION}
    new_annotations = {"istio.io/rev": REVISION}
    if app:
        new_annotations["kubectl.kubernetes.io/default-container"] = app[0]
        new_annotations["kubectl.kubernetes.io/default-logs-container"] = app[0]
    # meshConfig.enablePrometheusMerge (default true): pilot-agent serves the merged
    # metrics on its status port (inject.go `applyPrometheusMerge`)
    if "prometheus.io/scrape" not in annotations:
        new_annotations.update({"prometheus.io/path": "/stats/prometheus",
                                "prometheus.io/port": str(STATUS_PORT),
                                "prometheus.io/scrape": "true"})
    if cni:  # what the CNI plugin reads to set up the pod's capture
        new_annotations.update({
            "sidecar.istio.io/interceptionMode": "REDIRECT",
            "traffic.sidecar.istio.io/includeOutboundIPRanges": "*",
            "traffic.sidecar.istio.io/includeInboundPorts": "*",
            "traffic.sidecar.istio.io/excludeInboundPorts": str(STATUS_PORT)})
    new_annotations["sidecar.istio.io/status"] = json.dumps(status, separators=(",", ":"))
    return Injection(
        labels={k: v for k, v in new_labels.items() if k not in labels},
        annotations={k: v for k, v in new_annotations.items() if k not in annotations
                     or k == "sidecar.istio.io/status"},
        init_containers=inits, containers=containers, volumes=list(VOLUMES))


def inject(pod: dict, native: bool, cni: bool = False) -> None:
    """Apply the injection to `pod` in place (the API double's admission)."""
    parts = injection(pod, native, cni)
    meta = pod.setdefault("metadata", {})
    meta.setdefault("labels", {}).update(parts.labels)
    meta.setdefault("annotations", {}).update(parts.annotations)
    spec = pod.setdefault("spec", {})
    spec["initContainers"] = parts.init_containers + (spec.get("initContainers") or [])
    spec.setdefault("containers", []).extend(parts.containers)
    spec.setdefault("volumes", []).extend(parts.volumes)
