"""Pod volumes as the sandbox kubelet sets them up for the real API server: configMap, secret,
emptyDir, downwardAPI and projected service-account tokens from the TokenRequest API (bound
to the pod, for the audience and lifetime asked), under the pod's directory on the node, and
found by the pod's processes through SANDBOX_VOLUMES / SANDBOX_MOUNTS."""

from __future__ import annotations

import base64
import json
import pathlib

import pytest

from sandbox.real.kubelet import Kubelet
from sandbox.testing import wait_until


def get(cp, path: str) -> dict:
    code, body = cp.request("GET", path)
    assert code == 200, (path, body)
    return body


@pytest.fixture(scope="module")
def cluster(control_planes):
    cp = control_planes()
    kubelet = Kubelet(cp).start()
    try:
        yield cp, kubelet
    finally:
        kubelet.stop()


POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "vols", "namespace": "default", "labels": {"app": "vols"}},
    "spec": {
        "containers": [{"name": "app", "image": "sandbox/app:1",
                        "ports": [{"containerPort": 8080}],
                        "volumeMounts": [{"name": "settings", "mountPath": "/etc/settings"},
                                         {"name": "istio-token",
                                          "mountPath": "/var/run/secrets/tokens"}]}],
        "volumes": [
            {"name": "settings", "configMap": {"name": "settings",
                                               "items": [{"key": "mode", "path": "conf/mode"}]}},
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
                "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
        ]}}


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_volumes_are_set_up_as_a_kubelet_does(cluster):
    cp, kubelet = cluster
    assert cp.request("POST", "/api/v1/namespaces/default/configmaps", {
        "metadata": {"name": "settings"}, "data": {"mode": "strict", "other": "x"}})[0] == 201
    assert cp.request("POST", "/api/v1/namespaces/default/secrets", {
        "metadata": {"name": "creds"}, "data": {"password": base64.b64encode(b"s3cret").decode()}
    })[0] == 201
    assert cp.request("POST", "/api/v1/namespaces/default/pods", POD)[0] == 201
    pod = wait_until(what="vols Running",
                     predicate=lambda: (p := get(cp, "/api/v1/namespaces/default/pods/vols"))
                 ["status"].get("phase") == "Running" and p, timeout=60)
    root = kubelet.state_dir / "pods" / "default" / "vols" / "volumes"
    assert (root / "settings" / "conf" / "mode").read_text() == "strict"
    assert not (root / "settings" / "other").exists()  # only the items asked for
    assert (root / "creds" / "password").read_bytes() == b"s3cret"
    assert (root / "creds" / "password").stat().st_mode & 0o077 == 0
    assert (root / "scratch").is_dir() and not list((root / "scratch").iterdir())
    assert (root / "info" / "name").read_text() == "vols"
    assert (root / "info" / "labels").read_text() == 'app="vols"'

    # the projected token: the pod's service account, bound to the pod, for its audience
    token = (root / "istio-token" / "istio-token").read_text()
    claims = _claims(token)
    assert claims["aud"] == ["istio-ca"]
    assert claims["sub"] == "system:serviceaccount:default:default"
    assert claims["kubernetes.io"]["pod"] == {"name": "vols", "uid": pod["metadata"]["uid"]}
    assert claims["exp"] - claims["iat"] == 43200
    code, review = cp.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": ["istio-ca"]}})
    assert code == 201 and review["status"]["authenticated"], review

    # the API server's ServiceAccount admission added kube-api-access-*: token, ca.crt, namespace
    access = next(v["name"] for v in pod["spec"]["volumes"]
                  if v["name"].startswith("kube-api-access-"))
    assert (root / access / "ca.crt").read_bytes() == cp.ca.pem
    assert (root / access / "namespace").read_text() == "default"
    assert _claims((root / access / "token").read_text())["exp"] > claims["iat"]

    # the process finds them through its environment
    pid = next(c["pid"] for p in kubelet.runtime.status() if p["name"] == "vols"
               for c in p["containers"])
    environ = dict(kv.split("=", 1) for kv in
                   pathlib.Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in kv)
    assert environ["SANDBOX_VOLUMES"] == str(root)
    assert json.loads(environ["SANDBOX_MOUNTS"]) == {
        "/etc/settings": str(root / "settings"),
        "/var/run/secrets/tokens": str(root / "istio-token"),
        "/var/run/secrets/kubernetes.io/serviceaccount": str(root / access)}

    assert cp.request("DELETE", "/api/v1/namespaces/default/pods/vols")[0] == 200
    wait_until(what="vols gone",
               predicate=lambda: cp.request("GET", "/api/v1/namespaces/default/pods/vols")[0] == 404,
               timeout=60)
    assert not root.exists()  # torn down with the pod


def test_a_missing_configmap_keeps_the_pod_creating_until_it_exists(cluster):
    cp, _ = cluster
    pod = json.loads(json.dumps(POD))
    pod["metadata"]["name"] = "late"
    pod["spec"]["volumes"][0]["configMap"]["name"] = "late-settings"
    assert cp.request("POST", "/api/v1/namespaces/default/pods", pod)[0] == 201

    def waiting():
        p = get(cp, "/api/v1/namespaces/default/pods/late")
        states = [c["state"] for c in p["status"].get("containerStatuses") or []]
        return states and all("waiting" in s and "MountVolume.SetUp failed" in
                              s["waiting"].get("message", "") for s in states) and states
    states = wait_until(what="late waiting on its volume", predicate=waiting, timeout=60)
    assert 'configMap "late-settings" not found' in states[0]["waiting"]["message"]
    assert cp.request("POST", "/api/v1/namespaces/default/configmaps", {
        "metadata": {"name": "late-settings"}, "data": {"mode": "late"}})[0] == 201
    wait_until(what="late Running once the configMap exists",
               predicate=lambda: get(cp, "/api/v1/namespaces/default/pods/late")["status"].get("phase") == "Running",
               timeout=60)
