"""Which pods the sandbox injects with a sidecar: on the API double (admission inside the
server) exactly those Istio's webhook configuration sends to the injector
(manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml), which is
what the real backend's webhook (`sandbox.real.injection`) is registered with."""

from __future__ import annotations

import copy
import json

import pytest

from sandbox.controllers import wants_sidecar
from sandbox.real.injection import patch_for, webhook_configuration
from sandbox.sidecartemplate import inject


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


def applied(obj: dict, ops: list[dict]) -> dict:
    """`obj` after the JSON Patch `ops` (the `add` operations the injector sends, applied as
    the API server applies them: RFC 6902 with RFC 6901 pointers)."""
    obj = copy.deepcopy(obj)
    for op in ops:
        assert op["op"] == "add", op
        *parents, last = [t.replace("~1", "/").replace("~0", "~")
                          for t in op["path"].split("/")[1:]]
        target = obj
        for token in parents:
            target = target[int(token)] if isinstance(target, list) else target[token]
        if isinstance(target, list):
            target.insert(len(target) if last == "-" else int(last), op["value"])
        else:
            target[last] = op["value"]
    return obj


def deployment_pod(native_inits=()) -> dict:
    return {"metadata": {"name": "catalog-799c88d8d6-9v6hv", "namespace": "shop",
                         "generateName": "catalog-799c88d8d6-",
                         "labels": {"app": "catalog", "version": "v1",
                                    "pod-template-hash": "799c88d8d6"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": "catalog-799c88d8d6", "controller": True}]},
            "spec": {"containers": [{"name": "catalog", "image": "istioinaction/catalog",
                                     "ports": [{"name": "http", "containerPort": 3000,
                                                "protocol": "TCP"}]}],
                     **({"initContainers": list(native_inits)} if native_inits else {})}}


@pytest.mark.parametrize("native", [True, False])
def test_the_webhook_and_the_double_inject_the_same_pod(native):
    bare = deployment_pod()
    double = copy.deepcopy(bare)
    inject(double, native)
    assert applied(bare, patch_for(bare, native)) == double


def test_the_injected_pod_has_the_shape_real_istiod_gives_it():
    """What real istiod's injector stored on the real API server for the same Deployment's
    pod (tests/real/test_real_istio.py checks the real one; docs/real-istio.md finding 3)."""
    pod = copy.deepcopy(deployment_pod())
    inject(pod, native=True)
    meta, spec = pod["metadata"], pod["spec"]
    assert json.loads(meta["annotations"]["sidecar.istio.io/status"]) == {
        "initContainers": ["istio-init", "istio-proxy"], "containers": None,
        "volumes": ["workload-socket", "credential-socket", "workload-certs", "istio-envoy",
                    "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert",
                    "istio-ca-crl"],
        "imagePullSecrets": None, "revision": "default"}
    assert {k: v for k, v in meta["labels"].items() if "istio.io" in k} == {
        "security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": "catalog",
        "service.istio.io/canonical-revision": "v1"}
    assert meta["annotations"]["kubectl.kubernetes.io/default-container"] == "catalog"
    assert meta["annotations"]["prometheus.io/port"] == "15020"
    init, proxy = spec["initContainers"]
    assert init["args"][:1] == ["istio-iptables"] and "15090,15021,15020" in init["args"]
    assert set(init["securityContext"]["capabilities"]["add"]) == {"NET_ADMIN", "NET_RAW"}
    assert proxy["restartPolicy"] == "Always" and proxy["startupProbe"]["httpGet"]["port"] == 15021
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["ISTIO_META_WORKLOAD_NAME"] == "catalog"
    assert env["ISTIO_META_OWNER"] == \
        "kubernetes://apis/apps/v1/namespaces/shop/deployments/catalog"
    assert env["ISTIO_META_POD_PORTS"] == \
        '[\n    {"name":"http","containerPort":3000,"protocol":"TCP"}\n]'
    assert env["ISTIO_META_APP_CONTAINERS"] == "catalog"
    assert {v["name"] for v in spec["volumes"]} >= {"istio-token", "istiod-ca-cert"}


def test_the_webhook_leaves_opted_out_and_injected_pods_alone():
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


def test_the_webhook_puts_istio_init_and_a_native_sidecar_before_the_pods_own_inits():
    with_inits = deployment_pod([{"name": "setup", "image": "sandbox/app"}])
    patched = applied(with_inits, patch_for(with_inits, native=True))
    assert [(c["name"], c.get("restartPolicy")) for c in patched["spec"]["initContainers"]] == \
        [("istio-init", None), ("istio-proxy", "Always"), ("setup", None)]
    with_inits["spec"]["initContainers"].insert(0, {"name": "istio-proxy"})
    assert patch_for(with_inits, native=True) == []


def test_with_istio_cni_the_init_container_only_validates_and_has_no_capabilities():
    """values.pilot.cni.enabled: istio-validation as 1337, no NET_ADMIN/NET_RAW (Pod Security
    baseline allows it), and the capture settings the CNI plugin reads as annotations."""
    bare = deployment_pod()
    pod = applied(bare, patch_for(bare, native=True, cni=True))
    init, proxy = pod["spec"]["initContainers"]
    assert init["name"] == "istio-validation" and proxy["name"] == "istio-proxy"
    assert init["args"][-2:] == ["--run-validation", "--skip-rule-apply"]
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert init["securityContext"]["runAsUser"] == 1337
    annotations = pod["metadata"]["annotations"]
    assert annotations["sidecar.istio.io/interceptionMode"] == "REDIRECT"
    assert json.loads(annotations["sidecar.istio.io/status"])["initContainers"] == \
        ["istio-validation", "istio-proxy"]
