"""The typed, frozen options of one `kubectl mesh stats` run."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubectl_mesh.clusteroptions import ClusterOptions

STATS_TYPES = ("server", "clusters")
STATS_OUTPUTS = ("short", "json", "yaml", "prom")


@dataclass(frozen=True)
class StatsOptions:
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    target: str | None = None
    selector: str | None = None
    kind: str = "server"  # --type: server (/stats) or clusters (/clusters)
    output: str = "short"  # short: Envoy's text; prom: Prometheus text (server only)
    filter: str | None = None  # a regex on stat (or cluster) names
