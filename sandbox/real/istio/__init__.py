"""Real Istio on the real control plane (`sandbox.real.controlplane`).

`install(cp, istiod_address)` installs Istio as an operator would: the manifests
`istioctl manifest generate --set profile=minimal` renders from the istio module's charts
(`manifests.py`), applied with `kubectl apply --server-side` (`install.py`). The istiod
Deployment is left out: the real `pilot-discovery discovery` runs as a host process beside
the control plane, as an external control plane does (`discovery.Istiod`), and the webhooks
reach it by `url:` on its loopback address. With `install(..., istiod="pod")` the Deployment and
the webhooks' `service:` form are kept, and the kubelet of `sidecar.kubelet_for(cp, None, ...)`
runs istiod's pod (`istiodpod`)."""

from __future__ import annotations

from .discovery import Istiod, IstiodError
from .install import install

# What makes istiod's config loadable by upstream Envoy, which lacks Istio's own extensions
# (docs/real-istio.md finding 2): the metadata-exchange filters (pilot/pkg/features/telemetry.go
# PILOT_ENABLE_METADATA_EXCHANGE), the ALPN filter (pilot/pkg/features/pilot.go
# PILOT_ENABLE_ALPN_FILTER), and the stats filter that the chart's default metrics provider
# brings (istio-discovery templates/configmap.yaml `defaultProviders.metrics: [prometheus]`,
# rendered unless values.telemetry.enabled=false).
UPSTREAM_ENVOY_ENV = {"PILOT_ENABLE_METADATA_EXCHANGE": "false", "PILOT_ENABLE_ALPN_FILTER": "false"}
UPSTREAM_ENVOY_VALUES = ("values.telemetry.enabled=false",)
# The same for istiod as a pod (`install(..., istiod="pod")`): the environment in its
# Deployment, as a user sets it (istio-discovery values `pilot.env`, templates/deployment.yaml)
UPSTREAM_ENVOY_POD_VALUES = (*UPSTREAM_ENVOY_VALUES,
                             *(f"values.pilot.env.{k}={v}" for k, v in UPSTREAM_ENVOY_ENV.items()))

__all__ = ["Istiod", "IstiodError", "UPSTREAM_ENVOY_ENV", "UPSTREAM_ENVOY_POD_VALUES",
           "UPSTREAM_ENVOY_VALUES", "install"]
