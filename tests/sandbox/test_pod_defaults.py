"""What the API server adds to a pod it creates, the same on the API double as on the real
kube-apiserver (run with `--backend both`): the defaults (pkg/apis/core/v1/defaults.go), the
ServiceAccount, DefaultTolerationSeconds and Priority admission plugins, and the controller
manager's `default` service account and `kube-root-ca.crt` in every namespace
(sandbox/apiserver/podadmission.py cites each source)."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from sandbox.testing import wait_until

pytestmark = pytest.mark.timeout(300)
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
NS = "pod-defaults"


@pytest.fixture(scope="module")
def namespace(sandbox):
    sandbox.kubectl("create", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
    yield NS
    sandbox.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def create(sandbox, pod: dict, check: bool = True):
    out = sandbox.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(pod), check=check)
    return json.loads(out.stdout) if out.returncode == 0 else out


def pod(name: str, namespace: str = NS, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": "docker.io/istioinaction/catalog:latest",
                                     "ports": [{"containerPort": 3000}]},
                                    {"name": "tagged", "image": "docker.io/sandbox/app:1"}],
                     "terminationGracePeriodSeconds": 0, **spec}}


def test_every_namespace_gets_the_default_service_account_and_the_root_ca(sandbox, namespace):
    account = json.loads(wait_until(lambda: sandbox.kubectl(
        "get", "serviceaccount", "default", "-n", namespace, "-o", "json", check=False).stdout,
        timeout=60, what="the default service account"))
    assert account["metadata"]["name"] == "default"
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    root = json.loads(wait_until(lambda: sandbox.kubectl(
        "get", "configmap", "kube-root-ca.crt", "-n", namespace, "-o", "json", check=False).stdout,
        timeout=60, what="kube-root-ca.crt"))
    assert root["data"] == {"ca.crt": ca}
    assert root["metadata"]["annotations"]["kubernetes.io/description"].startswith(
        "Contains a CA bundle that can be used to verify the kube-apiserver")
    # deleted, both come back
    uid = account["metadata"]["uid"]
    sandbox.kubectl("delete", "serviceaccount", "default", "-n", namespace)
    sandbox.kubectl("delete", "configmap", "kube-root-ca.crt", "-n", namespace)
    wait_until(lambda: (lambda out: out.returncode == 0 and json.loads(out.stdout)["metadata"][
        "uid"] != uid)(sandbox.kubectl("get", "serviceaccount", "default", "-n", namespace,
                                       "-o", "json", check=False)),
        timeout=60, what="a new default service account")
    wait_until(lambda: sandbox.kubectl("get", "configmap", "kube-root-ca.crt", "-n", namespace,
                                       check=False).returncode == 0,
               timeout=60, what="kube-root-ca.crt again")


def test_a_pod_gets_the_api_servers_defaults(sandbox, namespace):
    wait_until(lambda: sandbox.kubectl("get", "serviceaccount", "default", "-n", namespace,
                                       check=False).returncode == 0, timeout=60,
               what="the default service account")
    created = create(sandbox, pod("plain"))
    try:
        spec = created["spec"]
        assert (spec["serviceAccountName"], spec["serviceAccount"]) == ("default", "default")
        assert spec["enableServiceLinks"] is True
        assert (spec["priority"], spec["preemptionPolicy"]) == (0, "PreemptLowerPriority")
        assert (spec["dnsPolicy"], spec["restartPolicy"], spec["schedulerName"]) == (
            "ClusterFirst", "Always", "default-scheduler")
        assert sorted(spec["tolerations"], key=lambda t: t["key"]) == [
            {"key": f"node.kubernetes.io/{key}", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300} for key in ("not-ready", "unreachable")]
        [volume] = spec["volumes"]
        assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == 21
        assert volume["projected"] == {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt",
                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
        app, tagged = spec["containers"]
        for c in (app, tagged):
            assert c["volumeMounts"] == [{"name": volume["name"], "readOnly": True,
                                          "mountPath": TOKEN_PATH}]
        # `latest` (or no tag) is pulled always, a tag if not present
        assert (app["imagePullPolicy"], tagged["imagePullPolicy"]) == ("Always", "IfNotPresent")
        assert app["ports"] == [{"containerPort": 3000, "protocol": "TCP"}]
        assert created["status"]["qosClass"] == "BestEffort"
    finally:
        sandbox.kubectl("delete", "pod", "plain", "-n", namespace, "--wait=false")


def test_no_token_volume_when_automount_is_off(sandbox, namespace):
    created = create(sandbox, pod("no-token", automountServiceAccountToken=False))
    try:
        assert "volumes" not in created["spec"]
        assert all("volumeMounts" not in c for c in created["spec"]["containers"])
    finally:
        sandbox.kubectl("delete", "pod", "no-token", "-n", namespace, "--wait=false")


def test_an_unknown_service_account_or_priority_class_is_refused(sandbox, namespace):
    out = create(sandbox, pod("no-account", serviceAccountName="nosuch"), check=False)
    assert out.returncode == 1
    assert ('pods "no-account" is forbidden: error looking up service account '
            f'{namespace}/nosuch: serviceaccount "nosuch" not found') in out.stderr, out.stderr
    out = create(sandbox, pod("no-class", priorityClassName="nosuch"), check=False)
    assert out.returncode == 1
    assert 'pods "no-class" is forbidden: no PriorityClass with name nosuch was found' \
        in out.stderr, out.stderr
    critical = create(sandbox, pod("critical", priorityClassName="system-cluster-critical"))
    sandbox.kubectl("delete", "pod", "critical", "-n", namespace, "--wait=false")
    assert critical["spec"]["priority"] == 2000000000


def test_the_injected_sidecar_gets_the_token_mount_too(sandbox):
    """The injector changed the pod, so the API server's admission chain ran again after it:
    istio-proxy (added by the webhook) has the token mount like the app container."""
    [catalog] = sandbox.pods("istioinaction", "app=catalog")[:1]
    spec = catalog["spec"]
    [volume] = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
    proxies = [c for c in spec.get("initContainers", []) + spec["containers"]
               if c["name"] == "istio-proxy"]
    assert proxies, [c["name"] for c in spec["containers"]]
    for c in spec.get("initContainers", []) + spec["containers"]:
        assert {"name": volume["name"], "readOnly": True, "mountPath": TOKEN_PATH} in \
            c["volumeMounts"], c["name"]


def test_istiod_publishes_its_root_certificate_in_every_namespace(sandbox, namespace):
    """istio-ca-root-cert, which injected sidecars mount (istiod-ca-cert), in every namespace
    istiod does not ignore, created later ones included (pilot/pkg/serviceregistry/kube/
    controller/namespacecontroller.go)."""
    def root_cert(ns: str):
        out = sandbox.kubectl("get", "configmap", "istio-ca-root-cert", "-n", ns, "-o", "json",
                              check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None
    own = wait_until(lambda: root_cert("istio-system"), timeout=60, what="istio-system's root")
    published = wait_until(lambda: root_cert(namespace), timeout=60, what=f"{namespace}'s root")
    assert published["data"] == own["data"] and "root-cert.pem" in own["data"]
    assert published["metadata"]["labels"] == {"istio.io/config": "true"}
    ignored = "local-path-storage"
    sandbox.kubectl("create", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ignored}}))
    try:
        # a namespace created after it: published once istiod sees it, the ignored one never
        later = f"{NS}-later"
        sandbox.kubectl("create", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": later}}))
        wait_until(lambda: root_cert(later), timeout=60, what=f"{later}'s root")
        assert root_cert(ignored) is None
    finally:
        for ns in (ignored, f"{NS}-later"):
            sandbox.kubectl("delete", "namespace", ns, "--wait=false", check=False)
