"""Real Istio on the real control plane: the minimal profile that `istioctl manifest generate`
renders, applied as an operator would (`sandbox.real.istio.install`), and the real
`pilot-discovery discovery` as a host process (`sandbox.real.istio.Istiod`) – its CA writes
istio-ca-root-cert everywhere, patches its webhooks' caBundle, and the API server calls its
injection webhook, so the pods the API server stores carry the real sidecar."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse

import pytest

from sandbox.real.controlplane import locate_binaries
from sandbox.real.istio import Istiod, install

INJECTED_NS = "istioinaction"


def await_(what: str, predicate, timeout: float = 60.0, step: float = 0.2):
    """Poll until `predicate()` returns something true; that value, or a failure naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(step)
    pytest.fail(f"{what}: not after {timeout:.0f} s (last: {last!r})")


@pytest.fixture(scope="module")
def binaries():
    return locate_binaries()


@pytest.fixture(scope="module")
def mesh(control_planes, binaries):
    """(control plane, istiod): Istio installed, real istiod running and ready."""
    cp = control_planes()
    istiod = Istiod(cp, binaries=binaries)
    install(cp, binaries / "istioctl", istiod.address)
    with istiod:
        yield cp, istiod


def get(cp, path: str) -> dict:
    code, body = cp.request("GET", path)
    assert code == 200, (path, body)
    return body


def create(cp, path: str, body: dict) -> dict:
    code, answer = cp.request("POST", path, body)
    assert code == 201, (path, answer)
    return answer


def namespace(cp, name: str, labels: dict[str, str]) -> None:
    create(cp, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": name, "labels": labels}})


def deployment(name: str, ns: str, image: str = "docker.io/istioinaction/catalog:latest") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{
                                      "name": name, "image": image,
                                      "ports": [{"containerPort": 3000}]}]}}}}


def pod_of(cp, ns: str, app: str) -> dict:
    """The one pod the ReplicaSet controller created for `app`, as the API server stores it."""
    selector = urllib.parse.quote(f"app={app}")
    items = await_(f"a pod of deploy/{app}.{ns}", lambda: get(
        cp, f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")["items"])
    return items[0]


# -- step 1: installed as an operator would

def test_the_minimal_profile_is_installed(mesh):
    cp, istiod = mesh
    for crd in ("virtualservices.networking.istio.io", "destinationrules.networking.istio.io",
                "sidecars.networking.istio.io", "peerauthentications.security.istio.io"):
        conditions = get(cp, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"
                         )["status"]["conditions"]
        assert {"type": "Established", "status": "True"}.items() <= \
            next(c for c in conditions if c["type"] == "Established").items(), crd
    mesh_config = get(cp, "/api/v1/namespaces/istio-system/configmaps/istio")["data"]["mesh"]
    assert "discoveryAddress: istiod.istio-system.svc:15012" in mesh_config
    injector = get(cp, "/api/v1/namespaces/istio-system/configmaps/istio-sidecar-injector")
    assert {"config", "values"} <= set(injector["data"])
    assert get(cp, "/api/v1/namespaces/istio-system/serviceaccounts/istiod")
    # the workload is the host process: no istiod Deployment in the cluster
    code, _ = cp.request("GET", "/apis/apps/v1/namespaces/istio-system/deployments/istiod")
    assert code == 404


def test_the_webhooks_call_istiod_by_url(mesh):
    cp, istiod = mesh
    mutating = get(cp, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                       "istio-sidecar-injector")["webhooks"]
    assert len(mutating) == 4
    assert {w["clientConfig"]["url"] for w in mutating} == {f"{istiod.url('webhook')}/inject"}
    validating = get(cp, "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
                         "istio-validator-istio-system")["webhooks"]
    assert [w["clientConfig"]["url"] for w in validating] == [f"{istiod.url('webhook')}/validate"]


# -- step 2: istiod's CA on the API server

def root_cert(cp, ns: str) -> str | None:
    code, body = cp.request("GET", f"/api/v1/namespaces/{ns}/configmaps/istio-ca-root-cert")
    return body["data"]["root-cert.pem"] if code == 200 else None


def test_istiod_writes_its_root_certificate_into_every_namespace(mesh):
    cp, _ = mesh
    root = await_("istio-ca-root-cert in istio-system", lambda: root_cert(cp, "istio-system"))
    assert root.startswith("-----BEGIN CERTIFICATE-----")
    assert root_cert(cp, "default") == root
    namespace(cp, "later", {})
    assert await_("istio-ca-root-cert in a new namespace", lambda: root_cert(cp, "later")) == root
    # the CA's key stays in istio-system, where only istiod reads it
    secret = get(cp, "/api/v1/namespaces/istio-system/secrets/istio-ca-secret")
    assert base64.b64decode(secret["data"]["ca-cert.pem"]).decode() == root


def test_istiod_patches_the_webhooks_ca_bundle_with_its_root(mesh):
    cp, _ = mesh
    root = await_("istio-ca-root-cert", lambda: root_cert(cp, "istio-system"))

    def bundles(kind: str, name: str) -> set[str]:
        webhooks = get(cp, f"/apis/admissionregistration.k8s.io/v1/{kind}/{name}")["webhooks"]
        return {base64.b64decode(w.get("clientConfig", {}).get("caBundle", "")).decode()
                for w in webhooks}

    assert await_("the injector's caBundle", lambda: bundles(
        "mutatingwebhookconfigurations", "istio-sidecar-injector") == {root})
    assert await_("the validator's caBundle", lambda: bundles(
        "validatingwebhookconfigurations", "istio-validator-istio-system") == {root})


# -- step 3: the API server stores injected pods

def test_the_api_server_stores_the_real_injected_sidecar(mesh):
    cp, istiod = mesh
    namespace(cp, INJECTED_NS, {"istio-injection": "enabled"})
    create(cp, f"/apis/apps/v1/namespaces/{INJECTED_NS}/deployments", deployment("catalog", INJECTED_NS))
    pod = pod_of(cp, INJECTED_NS, "catalog")
    spec, meta = pod["spec"], pod["metadata"]
    status = json.loads(meta["annotations"]["sidecar.istio.io/status"])
    assert status["initContainers"] == ["istio-init", "istio-proxy"]
    assert meta["labels"]["security.istio.io/tlsMode"] == "istio"
    assert meta["labels"]["service.istio.io/canonical-name"] == "catalog"
    assert [c["name"] for c in spec["containers"]] == ["catalog"]
    init, proxy = spec["initContainers"]
    assert init["name"] == "istio-init" and init["args"][0] == "istio-iptables"
    assert {"NET_ADMIN", "NET_RAW"} <= set(init["securityContext"]["capabilities"]["add"])
    # a native sidecar: an init container that keeps running (KEP-753)
    assert proxy["name"] == "istio-proxy" and proxy["restartPolicy"] == "Always"
    assert proxy["args"][:2] == ["proxy", "sidecar"]
    env = {e["name"]: e for e in proxy["env"]}
    assert env["CA_ADDR"]["value"] == "istiod.istio-system.svc:15012"
    assert env["ISTIO_META_WORKLOAD_NAME"]["value"] == "catalog"
    assert env["INSTANCE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert json.loads(env["ISTIO_META_POD_PORTS"]["value"]) == [{"containerPort": 3000,
                                                                 "protocol": "TCP"}]
    assert proxy["securityContext"]["runAsUser"] == 1337
    assert proxy["readinessProbe"]["httpGet"]["port"] == 15021
    mounts = {m["name"]: m["mountPath"] for m in proxy["volumeMounts"]}
    assert mounts["istiod-ca-cert"] == "/var/run/secrets/istio"
    assert mounts["istio-token"] == "/var/run/secrets/tokens"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["istiod-ca-cert"]["configMap"]["name"] == "istio-ca-root-cert"
    token = volumes["istio-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "istio-ca"
    assert {"istio-envoy", "istio-data", "istio-podinfo"} <= set(volumes)


def test_pods_outside_injected_namespaces_are_left_alone(mesh):
    cp, _ = mesh
    namespace(cp, "plain", {})
    create(cp, "/apis/apps/v1/namespaces/plain/deployments", deployment("catalog", "plain"))
    pod = pod_of(cp, "plain", "catalog")
    assert "sidecar.istio.io/status" not in pod["metadata"].get("annotations", {})
    assert not pod["spec"].get("initContainers")


def test_the_validation_webhook_rejects_a_broken_virtual_service(mesh):
    cp, _ = mesh
    broken = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
              "metadata": {"name": "broken", "namespace": "default",
                           "labels": {"istio.io/rev": "default"}},
              "spec": {"hosts": ["catalog"], "http": [{"route": [{"destination": {"host": "*"}}]}]}}
    code, answer = cp.request("POST", "/apis/networking.istio.io/v1/namespaces/default/"
                                      "virtualservices", broken)
    assert code == 400, answer
    assert 'admission webhook "rev.validation.istio.io" denied the request' in answer["message"]
    assert "invalid destination host *" in answer["message"]
    # the webhook judges only objects of its revision (objectSelector istio.io/rev=default)
    del broken["metadata"]["labels"]
    code, answer = cp.request("POST", "/apis/networking.istio.io/v1/namespaces/default/"
                                      "virtualservices", broken)
    assert code == 201, answer
