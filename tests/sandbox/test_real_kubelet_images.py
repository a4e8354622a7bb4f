"""Which images the real backend's kubelet runs (sandbox/real/kubelet/images.py)."""

from __future__ import annotations

import pytest

from sandbox.real.kubelet.images import known


@pytest.mark.parametrize("image, runs", [
    ("docker.io/istio/pilot:1.28.0", True),
    ("mcr.microsoft.com/oss/istio/pilot:1.28.0", True),  # AKS's mirror of istio/pilot
    ("busybox:1.36", True),
    ("sandbox/app:web", True),
    ("example/web:1", False),
    ("registry.example/team/missing:2", False),
    ("docker.io/istio/pilotx:1", False),
    ("registry.istio.io/release/examples-bookinfo-reviews-v3:1.20.3", True),  # sandbox/bookinfo.py
    ("docker.io/istio/examples-bookinfo-ratings-v1:1.18.0", True),
    ("docker.io/istio/examples-bookinfo-mongodb:1.18.0", False),
])
def test_known_repositories_also_under_a_mirrors_prefix(image, runs):
    assert known(image) is runs
