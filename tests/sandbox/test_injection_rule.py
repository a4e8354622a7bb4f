"""Which pods the sandbox injects with a sidecar: on the API double (admission inside the
server) exactly those Istio's webhook configuration sends to the injector
(manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml), which is
what the real backend's webhook (`sandbox.real.injection`) is registered with."""

from __future__ import annotations

import pytest

from sandbox.controllers import wants_sidecar
from sandbox.real.injection import patch_for, webhook_configuration


def pod(labels=None, annotations=None) -> dict:
    return {"metadata": {"name": "p", "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"containers": [{"name": "app", "image": "sandbox/app"}]}}


def ns(**labels) -> dict:
    return {"metadata": {"name": "n", "labels": labels}}


@pytest.mark.parametrize("pod_obj, namespace, injected", [
    (pod(), ns(**{"istio-injection": "enabled"}), True),
    (pod(), ns(**{"istio-injection": "disabled"}), False),
    (pod({"sidecar.istio.io/inject": "false"}), ns(**{"istio-injection": "enabled"}), False),
    (pod(annotations={"sidecar.istio.io/inject": "false"}), ns(**{"istio-injection": "enabled"}),
     False),
    (pod(), ns(**{"istio.io/rev": "default"}), True),
    (pod(), ns(**{"istio.io/rev": "canary"}), False),
    # rev.object: a pod's own istio.io/rev label in an unlabelled namespace (istiod's own pod
    # carries it, with sidecar.istio.io/inject=false to opt out, as Istio's chart has it)
    (pod({"istio.io/rev": "default"}), ns(), True),
    (pod({"istio.io/rev": "default", "sidecar.istio.io/inject": "false"}), ns(), False),
    # object: the label, not the annotation, selects the webhook
    (pod({"sidecar.istio.io/inject": "true"}), ns(), True),
    (pod(annotations={"sidecar.istio.io/inject": "true"}), ns(), False),
    (pod(), ns(), False),
])
def test_the_double_injects_what_istios_webhooks_select(pod_obj, namespace, injected):
    assert wants_sidecar(pod_obj, namespace) is injected


def test_the_webhook_patch_adds_the_doubles_sidecar_and_marks():
    ops = patch_for(pod())
    assert [o["path"] for o in ops] == ["/spec/containers/-",
                                        "/metadata/annotations/sidecar.istio.io~1status",
                                        "/metadata/labels/security.istio.io~1tlsMode"]
    assert ops[0]["value"]["name"] == "istio-proxy"
    assert patch_for(pod(annotations={"sidecar.istio.io/inject": "false"})) == []
    injected = pod()
    injected["spec"]["containers"].append({"name": "istio-proxy"})
    assert patch_for(injected) == []


def test_the_webhook_configuration_has_istios_four_injectors():
    config = webhook_configuration("https://127.0.0.1:15017/inject", b"CA")
    assert [w["name"] for w in config["webhooks"]] == [
        "rev.namespace.sidecar-injector.istio.io", "rev.object.sidecar-injector.istio.io",
        "namespace.sidecar-injector.istio.io", "object.sidecar-injector.istio.io"]
    assert {w["failurePolicy"] for w in config["webhooks"]} == {"Fail"}


def test_the_webhook_injects_a_native_sidecar_first_among_init_containers():
    bare = patch_for(pod(), native=True)
    assert bare[0] == {"op": "add", "path": "/spec/initContainers",
                       "value": [bare[0]["value"][0]]}
    assert bare[0]["value"][0]["restartPolicy"] == "Always"
    with_inits = pod()
    with_inits["spec"]["initContainers"] = [{"name": "setup", "image": "sandbox/app"}]
    first = patch_for(with_inits, native=True)[0]
    assert first["path"] == "/spec/initContainers/0" and first["value"]["name"] == "istio-proxy"
    with_inits["spec"]["initContainers"].insert(0, {"name": "istio-proxy"})
    assert patch_for(with_inits, native=True) == []
