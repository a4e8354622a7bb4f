"""Istio's sidecar injection for the real API server: a mutating admission webhook.

On the API double injection is an admission step inside the server (`sandbox.controllers`);
a real API server asks a webhook, as it asks istiod's `/inject` (pkg/kube/inject/webhook.go
`Webhook.serveInject`). This one answers AdmissionReview v1 with a JSONPatch that adds what
the double's admission adds (`sandbox.sidecartemplate`: istio-init, istio-proxy, the
volumes, labels and annotations of Istio's injection template).

Which pods are asked about is the webhook configuration's business, as in Istio's chart
(manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml: the
`rev.namespace`, `rev.object`, `namespace` and `object` sidecar-injector webhooks); the
handler still declines a pod whose `sidecar.istio.io/inject` annotation is "false" or that
has an istio-proxy already (pkg/kube/inject/inject.go `injectRequired`)."""

from __future__ import annotations

import base64
import http.server
import json

from ..controllers import INJECT_ANNOTATION
from ..sidecartemplate import injection
from ..httpserver import BackgroundHTTPServer, server_context

PATH = "/inject"
PORT = 15017  # istiod's webhook port
NAME = "istio-sidecar-injector"


def patch_for(pod: dict, native: bool = False, cni: bool = False) -> list[dict]:
    """The JSONPatch (RFC 6902) that injects the sidecar into `pod`; [] when none is wanted.
    `native`: istio-proxy as a native sidecar, the init container after istio-init with
    restartPolicy Always (ENABLE_NATIVE_SIDECARS), else a container after the pod's own."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec = pod.get("spec") or {}
    present = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    if annotations.get(INJECT_ANNOTATION) == "false" or \
            any(c.get("name") == "istio-proxy" for c in present):
        return []
    parts = injection(pod, native, cni)
    ops: list[dict] = []

    def add_all(path: str, present: bool, values: list, first: bool = False) -> None:
        if not present:
            ops.append({"op": "add", "path": path, "value": values})
        elif first:
            ops.extend({"op": "add", "path": f"{path}/{i}", "value": v}
                       for i, v in enumerate(values))
        else:
            ops.extend({"op": "add", "path": f"{path}/-", "value": v} for v in values)
    add_all("/spec/initContainers", "initContainers" in spec, parts.init_containers, first=True)
    if parts.containers:
        add_all("/spec/containers", "containers" in spec, parts.containers)
    add_all("/spec/volumes", "volumes" in spec, parts.volumes)
    for field, values in (("annotations", parts.annotations), ("labels", parts.labels)):
        if field not in meta:
            ops.append({"op": "add", "path": f"/metadata/{field}", "value": {}})
        ops.extend({"op": "add", "path": f"/metadata/{field}/{_pointer_token(key)}",
                    "value": value} for key, value in values.items())
    return ops


def _pointer_token(key: str) -> str:
    """A map key as one JSON Pointer reference token (RFC 6901: `~` as `~0`, `/` as `~1`)."""
    return key.replace("~", "~0").replace("/", "~1")


def review_response(review: dict, native=lambda pod: False, cni=lambda: False) -> dict:
    """The AdmissionReview answer to `review` (always allowed; patched when injected);
    `native(pod)`: whether to inject a native sidecar; `cni()`: Istio CNI installed."""
    request = review.get("request") or {}
    response: dict = {"uid": request.get("uid", ""), "allowed": True}
    pod = request.get("object") or {}
    ops = patch_for(pod, native(pod), cni())
    if ops:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
    return {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
            "kind": "AdmissionReview", "response": response}


def _selector(*expressions: tuple[str, str, list[str] | None]) -> dict:
    return {"matchExpressions": [{"key": k, "operator": op, **({"values": v} if v else {})}
                                 for k, op, v in expressions]}


def webhook_configuration(url: str, ca_pem: bytes) -> dict:
    """The MutatingWebhookConfiguration Istio's chart installs for the default revision."""
    not_disabled = ("sidecar.istio.io/inject", "NotIn", ["false"])
    selectors = (
        ("rev.namespace", _selector(("istio.io/rev", "In", ["default"]),
                                    ("istio-injection", "DoesNotExist", None)),
         _selector(not_disabled)),
        ("rev.object", _selector(("istio.io/rev", "DoesNotExist", None),
                                 ("istio-injection", "DoesNotExist", None)),
         _selector(not_disabled, ("istio.io/rev", "In", ["default"]))),
        ("namespace", _selector(("istio-injection", "In", ["enabled"])), _selector(not_disabled)),
        ("object", _selector(("istio-injection", "DoesNotExist", None),
                             ("istio.io/rev", "DoesNotExist", None)),
         _selector(("sidecar.istio.io/inject", "In", ["true"]),
                   ("istio.io/rev", "DoesNotExist", None))),
    )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        # Not the chart's istio.io/rev label (istio-discovery/templates/mutatingwebhook.yaml):
        # this webhook is called by URL, and istioctl and `kubectl mesh` take a revision's
        # webhook with a URL for an istiod outside the cluster and ask it for xDS
        # (istioctl/pkg/multixds/gather.go getXdsAddressFromWebhooks); this server is no istiod.
        "metadata": {"name": NAME, "labels": {"app": "sidecar-injector"}},
        "webhooks": [{
            "name": f"{prefix}.sidecar-injector.istio.io",
            "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"]}],
            "namespaceSelector": ns, "objectSelector": obj,
            "sideEffects": "None", "admissionReviewVersions": ["v1", "v1beta1"],
            "failurePolicy": "Fail", "reinvocationPolicy": "Never", "timeoutSeconds": 10,
        } for prefix, ns, obj in selectors],
    }


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_POST(self):  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length") or 0)
            review = json.loads(self.rfile.read(length) or b"{}")
            code, body = (200, review_response(review, self.server.native, self.server.cni)) \
                if self.path.split("?")[0] == PATH \
                else (404, {"message": "not found"})
        except (ValueError, AttributeError) as e:
            code, body = 400, {"message": f"not an AdmissionReview: {e}"}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class InjectionWebhook(BackgroundHTTPServer):
    """The webhook over TLS on `address`:15017, with a serving certificate from `ca`."""

    def __init__(self, address: str, ca, port: int = PORT, native=lambda pod: False,
                 cni=lambda: False):
        """`native(pod)`: inject a native sidecar (an init container) into `pod`; `cni()`:
        render for Istio CNI."""
        serving = ca.issue("sidecar-injector", "istiod.istio-system.svc", server_names=(address,),
                           client=False)
        super().__init__((address, port), _Handler, name="injection-webhook",
                         tls=server_context(str(serving.cert), str(serving.key)))
        self.native = native
        self.cni = cni
        self.url = f"https://{address}:{self.server_address[1]}{PATH}"
