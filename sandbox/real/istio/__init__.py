"""Real Istio on the real control plane (`sandbox.real.controlplane`).

`install(cp, istiod_address)` installs Istio as an operator would: the manifests
`istioctl manifest generate --set profile=minimal` renders from the istio module's charts
(`manifests.py`), applied with `kubectl apply --server-side` (`install.py`). The istiod
Deployment is left out: the real `pilot-discovery discovery` runs as a host process beside
the control plane, as an external control plane does (`discovery.Istiod`), and the webhooks
reach it by `url:` on its loopback address."""

from __future__ import annotations

from .discovery import Istiod, IstiodError
from .install import install

__all__ = ["Istiod", "IstiodError", "install"]
