"""`kubectl mesh dashboard`'s options, as the CLI parsed them."""

from __future__ import annotations

from dataclasses import dataclass

from kubectl_mesh.clusteroptions import ClusterOptions

ENVOY, CONTROLZ, ISTIOD_DEBUG = "envoy", "controlz", "istiod-debug"
# The TARGET words that mean istiod's pages rather than a pod or workload (a pod of that
# name is still reached as pod/NAME).
PAGE_WORDS = {"istiod": CONTROLZ, "controlz": CONTROLZ, "istiod-debug": ISTIOD_DEBUG}
CONTROLZ_PORT = 9876  # istio pkg/ctrlz/options.go DefaultControlZPort
ISTIOD_DEBUG_PORT = 15014  # istiod's monitoring port, where /debug is served


@dataclass(frozen=True)
class DashboardOptions:
    cluster: ClusterOptions
    page: str = ENVOY  # ENVOY, CONTROLZ or ISTIOD_DEBUG
    target: str | None = None  # the proxy (ENVOY)
    selector: str | None = None
    address: str = "127.0.0.1"  # where the local port listens (an IP address)
    port: int = 0  # the local port; 0 = a free one
    browser: bool = True
    istio_namespace: str = "istio-system"
    revision: str | None = None
    controlz_port: int = CONTROLZ_PORT
