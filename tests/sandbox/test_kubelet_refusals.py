"""The sandbox refuses to start containers as a kubelet does (sandbox/images.py): an image
the registry does not have (ErrImagePull, then ImagePullBackOff) and runAsNonRoot with a root
user (CreateContainerConfigError, verifyRunAsNonRoot's messages), for pods and ephemeral
containers - seen through real kubectl."""

from __future__ import annotations

import json

import pytest

from sandbox.images import Images, _normalise, run_as_non_root_error

pytestmark = pytest.mark.timeout(120)

PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: refusals}
---
apiVersion: v1
kind: Pod
metadata: {name: root-image, namespace: refusals}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - {name: web, image: nginx:1.27}
---
apiVersion: v1
kind: Pod
metadata: {name: root-user, namespace: refusals}
spec:
  containers:
  - name: web
    image: nginx:1.27
    securityContext: {runAsNonRoot: true, runAsUser: 0}
---
apiVersion: v1
kind: Pod
metadata: {name: named-user, namespace: refusals}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - {name: web, image: nginx:named}
---
apiVersion: v1
kind: Pod
metadata: {name: missing, namespace: refusals}
spec:
  containers:
  - {name: web, image: registry.example/team/missing:2}
---
apiVersion: v1
kind: Pod
metadata: {name: nonroot, namespace: refusals}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: web
    image: nginx:1.27
    securityContext: {runAsUser: 1000}
"""


@pytest.fixture(scope="module")
def pods(sandbox):
    (sandbox.state / "missing-images").write_text("# what the registry lacks\n"
                                                  "registry.example/team/missing\n")
    (sandbox.state / "image-users").write_text("nginx:named appuser\n")
    sandbox.kubectl("apply", "-f", "-", input=PODS)
    yield
    (sandbox.state / "missing-images").unlink(missing_ok=True)
    (sandbox.state / "image-users").unlink(missing_ok=True)


def waiting(sandbox, name: str, reason: str, key: str = "containerStatuses") -> dict:
    def state():
        pod = json.loads(sandbox.kubectl("get", "pod", name, "-n", "refusals", "-o",
                                         "json").stdout)
        for status in pod.get("status", {}).get(key) or []:
            w = status.get("state", {}).get("waiting") or {}
            if w.get("reason") == reason:
                return pod, w
        return None
    return sandbox.wait_for(state, timeout=30, what=f"{name} waiting with {reason}")


def test_a_root_image_under_run_as_non_root_is_refused_with_the_kubelets_message(sandbox, pods):
    pod, w = waiting(sandbox, "root-image", "CreateContainerConfigError")
    uid = pod["metadata"]["uid"]
    assert w["message"] == ("container has runAsNonRoot and image will run as root (pod: "
                            f'"root-image_refusals({uid})", container: web)')
    assert pod["status"]["phase"] == "Pending"
    table = sandbox.kubectl("get", "pod", "root-image", "-n", "refusals").stdout
    assert "CreateContainerConfigError" in table


def test_run_as_user_0_and_a_named_image_user_are_refused_too(sandbox, pods):
    _, w = waiting(sandbox, "root-user", "CreateContainerConfigError")
    assert w["message"].startswith("container's runAsUser breaks non-root policy (pod: ")
    _, w = waiting(sandbox, "named-user", "CreateContainerConfigError")
    assert w["message"].startswith("container has runAsNonRoot and image has non-numeric user "
                                   "(appuser), cannot verify user is non-root (pod: ")


def test_a_non_root_user_starts(sandbox, pods):
    sandbox.wait_for(lambda: json.loads(sandbox.kubectl(
        "get", "pod", "nonroot", "-n", "refusals", "-o", "json").stdout)["status"].get(
        "phase") == "Running", timeout=30, what="nonroot Running")


def test_a_missing_image_is_err_image_pull_then_image_pull_back_off(sandbox, pods):
    _, w = waiting(sandbox, "missing", "ImagePullBackOff")
    ref = "registry.example/team/missing:2"
    assert w["message"] == (f'Back-off pulling image "{ref}": ErrImagePull: failed to pull and '
                            f'unpack image "{ref}": failed to resolve reference "{ref}": {ref}: '
                            "not found")
    assert "ImagePullBackOff" in sandbox.kubectl("get", "pod", "missing", "-n",
                                                 "refusals").stdout


def test_ephemeral_containers_are_refused_alike(sandbox, pods):
    sandbox.wait_for(lambda: json.loads(sandbox.kubectl(
        "get", "pod", "nonroot", "-n", "refusals", "-o", "json").stdout)["status"].get(
        "phase") == "Running", timeout=30, what="nonroot Running")
    # kubectl debug's default profile sets no securityContext: it inherits runAsNonRoot
    sandbox.kubectl("debug", "nonroot", "-n", "refusals", "--image=busybox:1.36",
                    "--container=dbg-root", "--", "sleep", "30")
    _, w = waiting(sandbox, "nonroot", "CreateContainerConfigError", "ephemeralContainerStatuses")
    assert "container has runAsNonRoot and image will run as root" in w["message"]
    assert "container: dbg-root)" in w["message"]
    sandbox.kubectl("debug", "nonroot", "-n", "refusals",
                    "--image=registry.example/team/missing:7", "--container=dbg-pull", "--",
                    "sleep", "30")
    _, w = waiting(sandbox, "nonroot", "ImagePullBackOff", "ephemeralContainerStatuses")
    assert 'Back-off pulling image "registry.example/team/missing:7"' in w["message"]


@pytest.mark.parametrize("image, listed, missing", [
    ("busybox", "docker.io/library/busybox:latest", True),
    ("busybox:1.36", "busybox", True),
    ("busybox:1.36", "busybox:1.35", False),
    ("docker.io/nicolaka/netshoot:v0.13", "nicolaka/netshoot:v0.13", True),
    ("mirror.example/nicolaka/netshoot:v0.13", "nicolaka/netshoot", False),
], ids=["implicit-latest", "any-tag", "other-tag", "docker-hub", "other-registry"])
def test_missing_images_match_by_normalised_reference(tmp_path, image, listed, missing):
    (tmp_path / "missing-images").write_text(listed + "\n")
    assert Images(tmp_path).missing(image) is missing


def test_image_users_by_rule():
    images = Images(None)
    assert images.user("docker.io/istio/proxyv2:1.28.0") == "1337"
    assert images.user("gcr.io/distroless/static:nonroot") == "65532"
    assert images.user("nicolaka/netshoot:v0.13") == "0"
    assert _normalise("localhost:5000/x:1") == ("localhost:5000/x", "1")


def test_the_containers_fields_win_over_the_pods():
    pod = {"metadata": {"name": "p", "namespace": "n", "uid": "u"},
           "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000}}}
    sniff = {"name": "dbg", "securityContext": {"runAsNonRoot": False, "runAsUser": 0}}
    assert run_as_non_root_error(pod, sniff, "0") is None
    assert run_as_non_root_error(pod, {"name": "dbg"}, "0") is None  # the pod's 1000
    bare = {"metadata": pod["metadata"], "spec": {"securityContext": {"runAsNonRoot": True}}}
    assert "will run as root" in run_as_non_root_error(bare, {"name": "dbg"}, "0")
