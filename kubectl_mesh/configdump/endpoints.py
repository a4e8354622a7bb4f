"""Endpoints: from `/clusters?format=json` (health + outlier) or EndpointsConfigDump."""

from __future__ import annotations

import dataclasses

from kubectl_mesh.configdump.common import Table, socket_address
from kubectl_mesh.configdump.keys import normalise


@dataclasses.dataclass(frozen=True)
class Endpoint:
    cluster: str
    address: str  # IP, or `unix://path` / path for pipes
    port: int | None
    health_status: str  # HEALTHY, UNHEALTHY, DRAINING, TIMEOUT, DEGRADED, UNKNOWN
    failed_outlier_check: bool | None  # None when the source cannot tell (EDS dump)
    locality: str
    weight: int | None
    raw: dict = dataclasses.field(repr=False, compare=False)

    @property
    def endpoint(self) -> str:
        """The ENDPOINT cell: `address:port`, or the address alone for pipes."""
        return f"{self.address}:{self.port}" if self.port is not None else self.address


def parse_clusters_status(raw: dict) -> list[Endpoint]:
    """Envoy's `/clusters?format=json` → one Endpoint per host."""
    out = []
    for cs in raw.get("cluster_statuses") or raw.get("clusterStatuses") or ():
        cs = normalise(cs)
        for host in cs.get("host_statuses") or ():
            address, port = socket_address(host.get("address"))
            if "pipe" in (host.get("address") or {}):
                address = "unix://" + address
            health = host.get("health_status") or {}
            out.append(Endpoint(
                cluster=cs.get("name", ""), address=address, port=port,
                health_status=health.get("eds_health_status", "UNKNOWN"),
                failed_outlier_check=bool(health.get("failed_outlier_check", False)),
                locality=_locality(host.get("locality")),
                weight=host.get("weight"), raw=host,
            ))
    return out


def parse_eds(section: dict) -> list[Endpoint]:
    """EndpointsConfigDump (`?include_eds`) → one Endpoint per lb_endpoint."""
    out = []
    for field in ("dynamic_endpoint_configs", "static_endpoint_configs"):
        for item in section.get(field) or ():
            cla = normalise(item).get("endpoint_config") or {}
            cluster = cla.get("cluster_name", "")
            for group in cla.get("endpoints") or ():
                locality = _locality(group.get("locality"))
                for lb in group.get("lb_endpoints") or ():
                    address, port = socket_address((lb.get("endpoint") or {}).get("address"))
                    weight = lb.get("load_balancing_weight")
                    if isinstance(weight, dict):
                        weight = weight.get("value")
                    out.append(Endpoint(cluster, address, port,
                                        lb.get("health_status", "UNKNOWN"), None, locality,
                                        int(weight) if weight is not None else None, lb))
    return out


def _locality(loc: dict | None) -> str:
    loc = loc or {}
    return "/".join(p for p in (loc.get("region"), loc.get("zone"), loc.get("sub_zone")) if p)


@dataclasses.dataclass(frozen=True)
class EndpointFilter:
    """istioctl semantics: address (without port), port, cluster (case-insensitive) and
    status (health status, case-insensitive) must each equal when set."""

    address: str = ""
    port: int = 0
    cluster: str = ""
    status: str = ""

    def matches(self, ep: Endpoint) -> bool:
        if self.address and ep.address.lower() != self.address.lower():
            return False
        if self.port and ep.port != self.port:
            return False
        if self.cluster and ep.cluster.lower() != self.cluster.lower():
            return False
        return not self.status or ep.health_status.lower() == self.status.lower()


ENDPOINT_HEADERS = ("ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER")


def outlier_cell(failed: bool | None) -> str:
    return "-" if failed is None else "FAILED" if failed else "OK"


def endpoint_table(endpoints: list[Endpoint], flt: EndpointFilter = EndpointFilter(),
                   wide: bool = False) -> Table:
    """Rows sorted by address, port, cluster (istioctl); wide adds LOCALITY and WEIGHT."""
    selected = sorted((e for e in endpoints if flt.matches(e)),
                      key=lambda e: (e.address, e.port or 0, e.cluster))
    rows = []
    for e in selected:
        row = (e.endpoint, e.health_status, outlier_cell(e.failed_outlier_check), e.cluster)
        if wide:
            row += (e.locality, "" if e.weight is None else str(e.weight))
        rows.append(row)
    headers = ENDPOINT_HEADERS + (("LOCALITY", "WEIGHT") if wide else ())
    return Table(headers, rows, _grouped(selected))


def _grouped(selected: list[Endpoint]) -> list[dict]:
    """The selected hosts as Envoy shapes them, grouped per cluster: `/clusters` entries
    `{name, host_statuses}` or, from an EDS dump, `{cluster_name, lb_endpoints}`."""
    groups: dict[str, dict] = {}
    for e in selected:
        if e.failed_outlier_check is None:
            g = groups.setdefault(e.cluster, {"cluster_name": e.cluster, "lb_endpoints": []})
            g["lb_endpoints"].append(e.raw)
        else:
            g = groups.setdefault(e.cluster, {"name": e.cluster, "host_statuses": []})
            g["host_statuses"].append(e.raw)
    return list(groups.values())
