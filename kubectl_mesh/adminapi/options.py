"""`kubectl mesh admin`'s options, as the CLI parsed them."""

from __future__ import annotations

from dataclasses import dataclass

from kubectl_mesh.adminapi.endpoints import AdminPath
from kubectl_mesh.clusteroptions import ClusterOptions


@dataclass(frozen=True)
class AdminOptions:
    cluster: ClusterOptions
    path: AdminPath
    target: str | None = None
    selector: str | None = None
    allow_write: bool = False  # --allow-write: endpoints that change the proxy, POSTed
    all_pods: bool = False  # every pod of a workload, each under a header
    terminal: bool | None = None  # None: whether stdout is a terminal decides
