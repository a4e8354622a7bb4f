"""sniff on a pod whose istio-proxy is a native sidecar: an init container with restartPolicy
Always, what Istio injects when every kubelet is >= 1.33 (pkg/kube/inject/webhook.go)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kubectl_mesh.capture.options import SniffOptions
from kubectl_mesh.capture.podcapture import PodCapture
from kubectl_mesh.errors import UsageError

POD = SimpleNamespace(name="web-1", namespace="shop")
PROXY = {"name": "istio-proxy", "restartPolicy": "Always",
         "securityContext": {"capabilities": {"drop": ["ALL"]}}}
SPEC = {"spec": {"initContainers": [{"name": "istio-init"}, PROXY],
                 "containers": [{"name": "web"}]}}


def _candidates(**opts) -> list:
    return PodCapture(None, POD, SPEC, SniffOptions(target="web-1", **opts), None,
                      None).candidates()


def test_c_istio_proxy_finds_the_native_sidecar():
    (backend,) = _candidates(container="istio-proxy", mode="exec")
    assert (backend.mode, backend.container) == ("exec", "istio-proxy")


def test_the_ephemeral_target_defaults_to_the_native_sidecar():
    (backend,) = _candidates(mode="ephemeral")
    assert (backend.mode, backend.target_container) == ("ephemeral", "istio-proxy")


def test_a_plain_init_container_is_no_capture_target():
    with pytest.raises(UsageError) as e:
        _candidates(container="istio-init", mode="exec")
    assert "has no container istio-init" in e.value.message


def test_node_mode_refuses_a_gvisor_pod_before_touching_the_cluster():
    spec = {"spec": {**SPEC["spec"], "runtimeClassName": "gvisor"}}
    capture = PodCapture(None, POD, spec, SniffOptions(target="web-1", mode="node"), None, None)
    with pytest.raises(UsageError) as e:
        capture.candidates()
    assert "runtime class gvisor" in e.value.message and "--mode ephemeral" in e.value.hint
