"""Clusters: Istio cluster names, the ClustersConfigDump model, filter and table."""

from __future__ import annotations

import dataclasses

from kubectl_mesh.configdump.common import Table, istio_config_ref
from kubectl_mesh.configdump.keys import normalise
from kubectl_mesh.configdump.shape import SHAPE_ERRORS, Malformed, elements, relative, text


@dataclasses.dataclass(frozen=True)
class ClusterName:
    """An Istio cluster name `direction|port|subset|fqdn`, or any other name (`is_istio` False)."""

    raw: str
    direction: str = ""
    port: int | None = None
    subset: str = ""
    fqdn: str = ""
    is_istio: bool = False

    @classmethod
    def parse(cls, name: str) -> ClusterName:
        """`outbound|80|v1|x` → direction outbound, port 80, subset v1, fqdn x."""
        parts = name.split("|")
        if len(parts) < 4:
            return cls(raw=name, fqdn=name)
        try:
            port = int(parts[1])
        except ValueError:
            port = None
        return cls(name, parts[0], port, parts[2], "|".join(parts[3:]), True)


@dataclasses.dataclass(frozen=True)
class Cluster:
    name: str
    type: str  # STATIC, EDS, STRICT_DNS, ORIGINAL_DST, ... or a custom cluster_type name
    state: str  # static | active | warming
    destination_rule: str  # `name.ns` from filter_metadata.istio.config, or ""
    version_info: str
    last_updated: str
    raw: dict = dataclasses.field(repr=False, compare=False)

    @property
    def istio_name(self) -> ClusterName:
        return ClusterName.parse(self.name)


_STATES = (("static_clusters", "static"), ("dynamic_active_clusters", "active"),
           ("dynamic_warming_clusters", "warming"))


def parse_clusters(section: dict, at=relative) -> list[Cluster]:
    """ClustersConfigDump → clusters in dump order (dynamic active, static, warming);
    Malformed names the JSON path (`at(field, i)`) of a wrongly shaped one."""
    out: list[Cluster] = []
    for field, state in (_STATES[1], _STATES[0], _STATES[2]):
        for path, item in elements(section, field, at):
            try:
                item = normalise(item)
                raw = item.get("cluster") or {}
                out.append(Cluster(
                    name=text(raw, "name"),
                    type=_cluster_type(raw),
                    state=state,
                    destination_rule=istio_config_ref(raw.get("metadata")),
                    version_info=text(item, "version_info"),
                    last_updated=text(item, "last_updated"),
                    raw=raw,
                ))
            except (Malformed, *SHAPE_ERRORS) as e:
                raise Malformed.of(path, e) from e
    return out


def _cluster_type(raw: dict) -> str:
    custom = raw.get("cluster_type")
    if isinstance(custom, dict) and custom.get("name"):
        return text(custom, "name")
    return str(raw.get("type") or "STATIC")  # protojson omits the default enum value


@dataclasses.dataclass(frozen=True)
class ClusterFilter:
    """istioctl semantics: each set field must occur in the cluster name (port as `|port|`)."""

    fqdn: str = ""
    port: int = 0
    subset: str = ""
    direction: str = ""

    def matches(self, cluster: Cluster) -> bool:
        name = cluster.name
        if self.fqdn and self.fqdn not in name:
            return False
        if self.direction and self.direction not in name:
            return False
        if self.subset and self.subset not in name:
            return False
        return not self.port or f"|{self.port}|" in name


CLUSTER_HEADERS = ("SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE")


def cluster_table(clusters: list[Cluster], flt: ClusterFilter = ClusterFilter(),
                  wide: bool = False) -> Table:
    """Rows sorted like istioctl: by fqdn, subset, port, direction."""
    selected = [c for c in clusters if flt.matches(c)]
    selected.sort(key=_sort_key)
    rows = []
    for c in selected:
        n = c.istio_name
        if n.is_istio:
            row = (n.fqdn, str(n.port) if n.port is not None else "-", n.subset or "-",
                   n.direction, c.type, c.destination_rule)
        else:
            row = (c.name, "-", "-", "-", c.type, c.destination_rule)
        rows.append(row + ((c.state,) if wide else ()))
    headers = CLUSTER_HEADERS + (("STATE",) if wide else ())
    return Table(headers, rows, [c.raw for c in selected])


def _sort_key(c: Cluster):
    n = c.istio_name
    return (n.fqdn, n.subset, n.port or 0, n.direction)
