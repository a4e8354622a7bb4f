"""The typed, frozen options of one proxy-config run (the core never sees argparse)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubectl_mesh.clusteroptions import DEFAULT_CONCURRENCY, ClusterOptions
from kubectl_mesh.proxyconfig.views import View


@dataclass(frozen=True)
class ProxyConfigOptions:
    view: View  # which table, with its filter (views.py)
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    target: str | None = None  # pod, NAME.NS, deploy/x ...
    selector: str | None = None  # -l, instead of a target
    file: str | None = None  # a saved dump ('-' = stdin) instead of a pod
    all_pods: bool = False  # every replica of the target, compared
    output: str = "short"
    concurrency: int = DEFAULT_CONCURRENCY


@dataclass(frozen=True)
class RouteWalkOptions:
    """`routes --trace URL` (walk one request) or `routes --check` (every broken route)."""

    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    target: str | None = None
    selector: str | None = None
    file: str | None = None
    output: str = "short"
    url: str | None = None  # --trace; None with check
    headers: tuple[str, ...] = ()  # --header K:V for the trace
    method: str = "GET"
    check: bool = False


@dataclass(frozen=True)
class RootCaOptions:
    """`rootca-compare`: two pods (or two saved secrets dumps) and whether they share a root."""

    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    targets: tuple[str, ...] = ()  # two pods or workloads
    files: tuple[str, ...] = ()  # or two config dumps
