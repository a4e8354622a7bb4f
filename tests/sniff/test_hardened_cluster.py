"""Capture on hardened clusters: what the debug container and pod ask for, and every waiting
reason the kubelet can report during their start said in one line with the next step."""

from __future__ import annotations

import pytest

from kubectl_mesh.capture import backends
from kubectl_mesh.capture.options import SniffOptions


class FakeApi:
    """get_pod returns the pod with one ephemeral container in `state`."""

    def __init__(self, state: dict):
        self.state = state

    def get_pod(self, namespace, name, allow_missing=False):
        return {"metadata": {"name": name, "namespace": namespace},
                "status": {"ephemeralContainerStatuses": [{"name": "dbg", "state": self.state}]}}


def _wait(state: dict):
    backends._wait_running(FakeApi(state), "shop", "web-1", "dbg", 5, ephemeral=True,
                           image="mirror/netshoot:1")


@pytest.mark.parametrize("reason, said, hint", [
    ("ErrImagePull", "image mirror/netshoot:1 cannot be pulled", "KUBECTL_MESH_SNIFF_IMAGE"),
    ("ImagePullBackOff", "cannot be pulled", "--image"),
    ("CreateContainerConfigError", "cannot start: CreateContainerConfigError", "--mode exec"),
    ("RunContainerError", "cannot start: RunContainerError", "kubectl describe pod web-1 -n shop"),
    ("CrashLoopBackOff", "cannot start: CrashLoopBackOff", "kubectl describe pod"),
], ids=lambda v: v if isinstance(v, str) and v[0].isupper() else None)
def test_every_waiting_reason_ends_the_setup_with_the_next_step(reason, said, hint):
    with pytest.raises(backends.SetupFailed) as e:
        _wait({"waiting": {"reason": reason, "message": "details"}})
    assert said in e.value.message and "details" in e.value.message
    assert hint in e.value.hint


def test_creating_is_waited_for_until_the_deadline():
    api = FakeApi({"waiting": {"reason": "ContainerCreating"}})
    with pytest.raises(Exception) as e:
        backends._wait_running(api, "shop", "web-1", "dbg", 0.3, ephemeral=True, image="x")
    assert "did not start within" in str(e.value)


def test_the_ephemeral_container_asks_for_net_raw_alone_and_sets_its_own_user():
    spec = backends.EphemeralBackend(None, "shop", "web-1", "istio-proxy").spec(
        SniffOptions(target="web-1"))
    assert spec["securityContext"] == {"capabilities": {"add": ["NET_RAW"]}, "runAsUser": 0,
                                       "runAsGroup": 0, "runAsNonRoot": False}


def test_the_node_debug_pod_has_requests_and_limits_that_fit_its_capture_ring():
    resources = backends.node_pod_resources(SniffOptions(target="web-1", buffer_bytes=64 * 2**20))
    assert resources["requests"] == {"cpu": "50m", "memory": "64Mi"}
    assert resources["limits"] == {"cpu": "1", "memory": "192Mi"}


def test_the_default_image_can_be_set_once_in_the_environment(monkeypatch):
    from kubectl_mesh.cli import sniff
    monkeypatch.setenv("KUBECTL_MESH_SNIFF_IMAGE", "mirror.example/netshoot:1")
    args = sniff.build_parser("kubectl mesh sniff").parse_args(["web-1"])
    assert args.image == "mirror.example/netshoot:1"
