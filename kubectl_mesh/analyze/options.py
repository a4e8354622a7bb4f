"""The frozen options of one `kubectl mesh analyze` run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from kubectl_mesh.analyze.messages import Level
from kubectl_mesh.clusteroptions import ClusterOptions


@dataclass(frozen=True)
class Suppression:
    """`--suppress CODE=KIND NAME.NAMESPACE` (`*` a wildcard in the resource part)."""

    code: str
    resource: str


@dataclass(frozen=True)
class AnalyzeOptions:
    cluster: ClusterOptions
    files: tuple[str, ...] = ()
    recursive: bool = False
    use_kube: bool = True
    output: str = "short"
    output_threshold: Level = Level.INFO
    failure_threshold: Level = Level.ERROR
    suppressions: tuple[Suppression, ...] = ()
    list_analyzers: bool = False
    mesh_config_file: Optional[str] = None  # --meshConfigFile; else istiod's ConfigMap live
    istio_namespace: str = "istio-system"
    revision: Optional[str] = None
    live: bool = False  # --live: add what the selected proxies and istiod say
