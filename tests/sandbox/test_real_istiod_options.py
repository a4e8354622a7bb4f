"""Where istiod runs on the real backend (sandbox/real/istio): the choices refused before
anything starts."""

from __future__ import annotations

import pathlib

import pytest

from sandbox.real.istio import manifests
from sandbox.real.istio.sidecar import kubelet_for


def test_istiod_as_a_pod_needs_the_netns_pod_network():
    with pytest.raises(ValueError, match='istiod as a pod needs pod_network="netns"'):
        kubelet_for(object(), None, pod_network="loopback")


def test_an_unknown_istiod_mode_is_refused_before_istioctl_runs():
    with pytest.raises(ValueError, match=r"istiod must be one of \('host', 'pod'\), not 'cloud'"):
        manifests.generate(pathlib.Path("/nonexistent/istioctl"), None, istiod="cloud")
