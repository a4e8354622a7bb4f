"""The frozen options of one `kubectl mesh describe` run."""

from __future__ import annotations

from dataclasses import dataclass

from kubectl_mesh.clusteroptions import ClusterOptions


@dataclass(frozen=True)
class DescribeOptions:
    cluster: ClusterOptions
    kind: str  # "pod" (a pod, deploy/NAME, svc/NAME ...) or "service"
    target: str
    output: str = "short"  # short | json | yaml
    istio_namespace: str = "istio-system"  # where the mesh config (root namespace) lives
    check_proxies: bool = True  # ask the pod's and the gateways' Envoys what they carry
    ignore_unmeshed: bool = False  # istioctl's --ignoreUnmeshed
