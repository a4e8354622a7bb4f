"""sniff against what the kubelet refuses (the sandbox does as kubelets do: sandbox/images.py):
its debug container's own securityContext starts under a pod's runAsNonRoot, where a debug
container without one is refused (CreateContainerConfigError); a debug image the nodes cannot
pull ends the setup at once with the waiting reason and the next step, leaving nothing
running."""

from __future__ import annotations

import json
import time

import pytest

from kubectl_mesh.capture.pcap import read_file
from tests.sniff.conftest import Traffic

pytestmark = pytest.mark.timeout(180)

NONROOT = """
apiVersion: v1
kind: Namespace
metadata: {name: nonroot}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: nonroot}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
      - name: web
        image: sandbox/app:web
        ports: [{containerPort: 3000}]
        securityContext: {runAsUser: 1000}
"""
NETSHOOT = "docker.io/nicolaka/netshoot:v0.13"


@pytest.fixture(scope="module")
def nonroot_web(sandbox) -> dict:
    sandbox.kubectl("apply", "-f", "-", input=NONROOT)
    return sandbox.wait_for(lambda: next((p for p in sandbox.pods("nonroot", "app=web")
                                          if p["status"].get("phase") == "Running"), None),
                            timeout=60, what="the runAsNonRoot pod")


@pytest.fixture
def missing_netshoot(sandbox):
    (sandbox.state / "missing-images").write_text(NETSHOOT + "\n")
    yield
    (sandbox.state / "missing-images").unlink(missing_ok=True)


def ephemeral_states(sandbox, pod: dict) -> dict:
    obj = json.loads(sandbox.kubectl("get", "pod", pod["metadata"]["name"], "-n",
                                     pod["metadata"]["namespace"], "-o", "json").stdout)
    return {s["name"]: s.get("state", {})
            for s in obj["status"].get("ephemeralContainerStatuses") or []}


def test_sniffs_own_security_context_starts_under_run_as_non_root(mesh, sandbox, nonroot_web,
                                                                 tmp_path):
    name = nonroot_web["metadata"]["name"]
    # the control: a debug container of the same image without a securityContext of its own
    # inherits runAsNonRoot, and the kubelet refuses the root image
    sandbox.kubectl("debug", name, "-n", "nonroot", f"--image={NETSHOOT}", "--container=plain",
                    "--", "sleep", "30")
    refused = sandbox.wait_for(lambda: ephemeral_states(sandbox, nonroot_web).get(
        "plain", {}).get("waiting"), timeout=30, what="the plain debug container refused")
    assert refused["reason"] == "CreateContainerConfigError"
    assert "container has runAsNonRoot and image will run as root" in refused["message"]
    out = tmp_path / "web.pcap"
    with Traffic(f"http://{nonroot_web['status']['podIP']}:3000/"):
        result = mesh(f"{name}.nonroot", "--mode", "ephemeral", "-o", str(out), "--count", "3")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert len(read_file(str(out))[1]) == 3


def test_a_debug_image_the_node_cannot_pull_ends_the_setup_with_the_next_step(
        mesh, sandbox, nonroot_web, missing_netshoot, tmp_path):
    started = time.monotonic()
    result = mesh(f"{nonroot_web['metadata']['name']}.nonroot", "--mode", "ephemeral", "-o",
                  str(tmp_path / "x.pcap"), "--duration", "1h")
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert time.monotonic() - started < 30, err  # not the 60 s setup timeout, not an hour
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert f"error: image {NETSHOOT} cannot be pulled for kubectl-mesh-sniff-" in line
    assert ": ErrImagePull: failed to pull and unpack image" in line \
        or ": ImagePullBackOff: Back-off pulling image" in line, line
    assert "KUBECTL_MESH_SNIFF_IMAGE" in line and "--image" in line
    assert "captured 0 packets" not in err and list(tmp_path.iterdir()) == []
    assert "it never ran (ErrImagePull)" in err or "it never ran (ImagePullBackOff)" in err


def test_a_mirror_that_can_be_pulled_captures(mesh, nonroot_web, missing_netshoot, tmp_path):
    out = tmp_path / "m.pcap"
    with Traffic(f"http://{nonroot_web['status']['podIP']}:3000/"):
        result = mesh(f"{nonroot_web['metadata']['name']}.nonroot", "--mode", "ephemeral",
                      "--image", "mirror.example/nicolaka/netshoot:v0.13", "-o", str(out),
                      "--count", "2")
    assert result.returncode == 0, result.stderr
    assert len(read_file(str(out))[1]) == 2


def test_node_mode_with_an_image_the_node_cannot_pull_deletes_its_debug_pod(
        mesh, sandbox, missing_netshoot, tmp_path):
    result = mesh("deploy/istio-ingressgateway", "-n", "istio-system", "--mode", "node",
                  "--privileged", "-o", str(tmp_path / "n.pcap"))
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert f"image {NETSHOOT} cannot be pulled for sniff in pod kubectl-mesh-sniff-" in err
    assert "deleted" in err
    sandbox.wait_for(lambda: not [p for p in sandbox.pods("istio-system")
                                  if p["metadata"]["name"].startswith("kubectl-mesh-sniff-")],
                     timeout=15, what="the debug pod deleted")
