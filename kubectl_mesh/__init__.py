"""kubectl-mesh: kubectl plugins for troubleshooting the Istio/Envoy data plane."""

__version__ = "0.1.0"
