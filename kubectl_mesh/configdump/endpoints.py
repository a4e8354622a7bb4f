"""Endpoints: from `/clusters?format=json` (health + outlier) or EndpointsConfigDump."""

from __future__ import annotations

import dataclasses

from kubectl_mesh.configdump.common import Table, socket_address
from kubectl_mesh.configdump.keys import normalise
from kubectl_mesh.configdump.shape import SHAPE_ERRORS, Malformed, elements, relative, text


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
    raw_locality: dict | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def endpoint(self) -> str:
        """The ENDPOINT cell: `address:port`, or the address alone for pipes."""
        return f"{self.address}:{self.port}" if self.port is not None else self.address


def parse_clusters_status(raw: dict) -> list[Endpoint]:
    """Envoy's `/clusters?format=json` → one Endpoint per host."""
    out = []
    field = "cluster_statuses" if "cluster_statuses" in raw else "clusterStatuses"
    for path, cs in elements(raw, field):
        try:
            cs = normalise(cs)
            for host_path, host in elements(cs, "host_statuses"):
                try:
                    address, port = socket_address(host.get("address"))
                    if "pipe" in (host.get("address") or {}):
                        address = "unix://" + address
                    health = host.get("health_status") or {}
                    out.append(Endpoint(
                        cluster=text(cs, "name"), address=address, port=port,
                        health_status=text(health, "eds_health_status", "UNKNOWN"),
                        failed_outlier_check=bool(health.get("failed_outlier_check", False)),
                        locality=_locality(host.get("locality")),
                        weight=_int(host.get("weight")), raw=host,
                    ))
                except (Malformed, *SHAPE_ERRORS) as e:
                    raise Malformed.of(host_path, e) from e
        except (Malformed, *SHAPE_ERRORS) as e:
            raise Malformed.of(path, e) from e
    return out


def _int(value) -> int | None:
    if isinstance(value, dict):  # UInt32Value
        value = value.get("value")
    return None if value is None else int(value)


def parse_eds(section: dict, at=relative) -> list[Endpoint]:
    """EndpointsConfigDump (`?include_eds`) → one Endpoint per lb_endpoint; Malformed names
    the JSON path (`at(field, i)`) of a wrongly shaped endpoint config."""
    out = []
    for field in ("dynamic_endpoint_configs", "static_endpoint_configs"):
        for path, item in elements(section, field, at):
            try:
                cla = normalise(item).get("endpoint_config") or {}
                cluster = text(cla, "cluster_name")
                for group_path, group in elements(cla, "endpoints"):
                    raw_locality = group.get("locality")
                    locality = _locality(raw_locality)
                    for lb_path, lb in elements(group, "lb_endpoints"):
                        try:
                            address, port = socket_address((lb.get("endpoint") or {}).get("address"))
                            out.append(Endpoint(cluster, address, port,
                                                text(lb, "health_status", "UNKNOWN"), None,
                                                locality, _int(lb.get("load_balancing_weight")),
                                                lb, raw_locality))
                        except (Malformed, *SHAPE_ERRORS) as e:
                            raise Malformed.of(f"endpoint_config.{group_path}.{lb_path}", e) from e
            except (Malformed, *SHAPE_ERRORS) as e:
                raise Malformed.of(path, e) from e
    return out


def _locality(loc: dict | None) -> str:
    loc = loc or {}
    return "/".join(p for p in (text(loc, "region"), text(loc, "zone"), text(loc, "sub_zone"))
                    if p)


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


EDS_HEADERS = ("NAME", "STATUS", "LOCALITY", "CLUSTER")


def eds_table(endpoints: list[Endpoint], flt: EndpointFilter = EndpointFilter(),
              wide: bool = False) -> Table:
    """istioctl's table of a config dump's EDS section (`proxy-config endpoints --file` of a
    dump taken with `?include_eds`): NAME STATUS LOCALITY CLUSTER, clusters ordered as
    istioctl orders them (istioctl/pkg/writer/envoy/configdump/endpoint.go
    `retrieveSortedEndpointsSlice`: by host, subset, port, direction of the cluster name),
    endpoints in the dump's order within a cluster; wide adds WEIGHT."""
    by_cluster: dict[str, list[Endpoint]] = {}
    for e in endpoints:
        if flt.matches(e):
            by_cluster.setdefault(e.cluster, []).append(e)
    selected = [e for name in sorted(by_cluster, key=_subset_key) for e in by_cluster[name]]
    rows = []
    for e in selected:
        row = (e.endpoint, e.health_status, _locality_text(e.raw_locality), e.cluster)
        if wide:
            row += ("" if e.weight is None else str(e.weight),)
        rows.append(row)
    return Table(EDS_HEADERS + (("WEIGHT",) if wide else ()), rows, _grouped(selected))


def _subset_key(cluster: str) -> tuple[str, str, int, str]:
    """(host, subset, port, direction) of `direction|port|subset|host` (pilot's
    ParseSubsetKey; the `_.`-separated SRV form too); other names are a host alone."""
    sep = "_." if cluster.startswith(("outbound_.", "inbound_.")) else "|"
    parts = cluster.split(sep, 3)
    if len(parts) < 4:
        return cluster, "", 0, ""
    direction, port, subset, host = parts
    return host, subset, int(port) if port.isdigit() else 0, direction


def _locality_text(loc: dict | None) -> str:
    """pilot/pkg/networking/util LocalityToString: region[/zone[/subzone]]."""
    loc = loc or {}
    out = text(loc, "region")
    if text(loc, "zone"):
        out += "/" + text(loc, "zone")
        if text(loc, "sub_zone"):
            out += "/" + text(loc, "sub_zone")
    return out


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
