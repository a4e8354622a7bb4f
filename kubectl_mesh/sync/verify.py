"""`--verify`: what the proxy's own Envoy says, against what istiod believes.

istiod only knows what it sent and what came back. The Envoy side adds:
- `update_rejected` counters and `version_text` (the last ACCEPTED version) per
  subscription (`cluster_manager.cds.*`, `listener_manager.lds.*`,
  `http.<prefix>.rds.<route>.*`, `cluster.<name>.*` for EDS) – CDS/RDS/EDS rejections are
  visible only here and in istiod's lastError;
- LDS `error_state.details` in the config dump – the one place Envoy keeps its error text;
- `control_plane.connected_state` / `control_plane.identifier` – is the ADS stream up, and to
  which control plane.
Pure: `envoy_state()` parses fetched JSON, `proxy_findings()` compares; fetching is in probe.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from kubectl_mesh.syncstatus import ERROR, SYNCED, ProxySync

# /stats?filter= for everything the checks read (a partial regex, as Envoy applies it).
STATS_FILTER = r"(\.version_text|\.update_rejected|^control_plane\.(connected_state|identifier))$"
LISTENERS_MASK = "dynamic_listeners"

REJECTED, LAGGING, DISCONNECTED, UNKNOWN, GONE, UNREACHABLE = (
    "REJECTED", "LAGGING", "DISCONNECTED", "UNKNOWN", "GONE", "UNREACHABLE")
ERROR_LEVEL, WARNING_LEVEL = "error", "warning"
LAST_ERROR_CHARS = 200  # the full NACK text is in the stderr notes and in -o json


@dataclass(frozen=True)
class Finding:
    """One thing `--verify` found about one proxy."""

    proxy: str  # pod.namespace
    check: str  # REJECTED, LAGGING, DISCONNECTED, UNKNOWN, GONE, UNREACHABLE
    detail: str
    type: str = ""  # CDS, LDS, RDS, EDS when the finding is about one xDS type
    severity: str = ERROR_LEVEL  # "warning" does not change the exit code

    def to_dict(self) -> dict[str, str]:
        data = {"proxy": self.proxy, "check": self.check, "severity": self.severity,
                "detail": self.detail}
        if self.type:
            data["type"] = self.type
        return data


@dataclass(frozen=True)
class EnvoyState:
    """The parts of one Envoy's stats and LDS dump the checks need."""

    connected: bool | None = None
    control_plane: str | None = None  # the control plane's identifier, as Envoy saw it
    versions: Mapping[str, str] = field(default_factory=dict)  # "CDS", "LDS", "RDS <route>"
    rejected: Mapping[str, int] = field(default_factory=dict)  # "CDS", "LDS", "RDS <r>", "EDS <c>"
    listener_errors: tuple[tuple[str, str], ...] = ()  # (listener name, Envoy's details)

    def rejected_total(self, xds_type: str) -> tuple[int, list[str]]:
        """(update_rejected summed over the type's subscriptions, names of those with any)."""
        total, names = 0, []
        for key, count in sorted(self.rejected.items()):
            kind, _, name = key.partition(" ")
            if kind == xds_type and count:
                total += count
                if name:
                    names.append(name)
        return total, names


def _stat_key(name: str) -> tuple[str, str] | None:
    """A stat name → ("CDS" | "LDS" | "RDS <route>" | "EDS <cluster>", "version_text" |
    "update_rejected"); None for other stats."""
    base, _, leaf = name.rpartition(".")
    if leaf not in ("version_text", "update_rejected"):
        return None
    if base == "cluster_manager.cds":
        return "CDS", leaf
    if base == "listener_manager.lds":
        return "LDS", leaf
    if base.startswith("http.") and ".rds." in base:
        return f"RDS {base.split('.rds.', 1)[1]}", leaf
    if base.startswith("cluster.") and base != "cluster_manager":
        return f"EDS {base[len('cluster.'):]}", leaf
    return None


def envoy_state(stats: Mapping[str, Any], listeners_dump: Mapping[str, Any] | None) -> EnvoyState:
    """Parse `/stats?format=json` (filtered) and `/config_dump?mask=dynamic_listeners`."""
    versions: dict[str, str] = {}
    rejected: dict[str, int] = {}
    connected = control_plane = None
    for stat in stats.get("stats") or []:
        name, value = stat.get("name", ""), stat.get("value")
        if name == "control_plane.connected_state":
            connected = bool(value)
        elif name == "control_plane.identifier":
            control_plane = str(value or "") or None
        elif (key := _stat_key(name)) is not None:
            kind, leaf = key
            if leaf == "version_text":
                versions[kind] = str(value or "")
            else:
                rejected[kind] = rejected.get(kind, 0) + int(value or 0)
    errors = []
    for config in (listeners_dump or {}).get("configs") or []:
        for listener in config.get("dynamic_listeners") or []:
            state = listener.get("error_state")
            if state:
                errors.append((listener.get("name", "?"), str(state.get("details", "")).strip()))
    return EnvoyState(connected, control_plane, versions, rejected, tuple(errors))


def istiod_versions(dump: Mapping[str, Any] | None) -> dict[str, str]:
    """The versions istiod last sent the proxy, from its `/debug/config_dump?proxyID=`:
    {"CDS": v, "LDS": v, "RDS <route>": v} (EDS is not in that dump)."""
    versions: dict[str, str] = {}
    for config in (dump or {}).get("configs") or []:
        kind = config.get("@type", "").rsplit(".", 1)[-1]
        if kind == "ClustersConfigDump" and config.get("version_info"):
            versions["CDS"] = config["version_info"]
        elif kind == "ListenersConfigDump" and config.get("version_info"):
            versions["LDS"] = config["version_info"]
        elif kind == "RoutesConfigDump":
            for route in config.get("dynamic_route_configs") or []:
                name = (route.get("route_config") or {}).get("name")
                if name and route.get("version_info"):
                    versions[f"RDS {name}"] = route["version_info"]
    return versions


def control_plane_id(identifier: str | None) -> str:
    """`{"Component":"istiod","ID":"istiod-7f9c",...}` → `istiod-7f9c` (else the raw text)."""
    import json

    if not identifier:
        return "unknown"
    try:
        data = json.loads(identifier)
    except ValueError:
        return identifier[:80]
    if isinstance(data, dict) and data.get("ID"):
        version = (data.get("Info") or {}).get("version")
        return f"{data['ID']}" + (f" ({version})" if version else "")
    return identifier[:80]


def proxy_findings(proxy_id: str, sync: ProxySync | None, envoy: EnvoyState,
                   istiod_dump: Mapping[str, Any] | None) -> list[Finding]:
    """Everything wrong with one proxy that istiod's syncz alone cannot show.

    `sync` is None for a proxy no istiod lists; `istiod_dump` is the owning istiod's view
    (None when unknown). A version is "lagging" only where istiod says SYNCED: that is the
    case where istiod believes the proxy holds a version it does not.
    """
    out: list[Finding] = []
    if sync is None:
        where = ("connected to control plane " + control_plane_id(envoy.control_plane)
                 if envoy.connected else "not connected to any control plane")
        out.append(Finding(proxy_id, UNKNOWN, f"no istiod lists this proxy; its Envoy is {where} "
                           "(another revision or istiod address?)"))
    elif envoy.connected is False:
        out.append(Finding(proxy_id, DISCONNECTED, "control_plane.connected_state is 0: the ADS "
                           f"stream to the control plane is down (istiod {sync.istiod} still "
                           "lists it)"))
    expected = istiod_versions(istiod_dump)
    for xds_type in ("CDS", "LDS", "RDS", "EDS"):
        status = sync.type(xds_type) if sync is not None else None
        count, names = envoy.rejected_total(xds_type)
        lagging = [k for k, v in sorted(expected.items())
                   if k.split(" ")[0] == xds_type and envoy.versions.get(k, "") != v]
        if status is not None and status.status == ERROR or (
                xds_type == "LDS" and envoy.listener_errors):
            out.append(Finding(proxy_id, REJECTED, _rejection(xds_type, count, names, envoy,
                                                              status), xds_type))
        elif count and lagging:
            out.append(Finding(proxy_id, REJECTED, _rejection(xds_type, count, names, envoy,
                                                              status), xds_type))
        elif count:
            out.append(Finding(proxy_id, REJECTED, f"Envoy rejected {count} earlier update(s)"
                               f"{_names(names)}; the current version is accepted",
                               xds_type, WARNING_LEVEL))
        if status is not None and status.status == SYNCED and lagging:
            shown = ", ".join(f"{k}: Envoy has {envoy.versions.get(k) or 'none'}, istiod sent "
                              f"{expected[k]}" for k in lagging[:3])
            out.append(Finding(proxy_id, LAGGING, f"istiod says SYNCED but {shown}"
                               + (f" (+{len(lagging) - 3} more)" if len(lagging) > 3 else ""),
                               xds_type))
    return out


def _names(names: list[str]) -> str:
    if not names:
        return ""
    return f" ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"


def _rejection(xds_type: str, count: int, names: list[str], envoy: EnvoyState, status) -> str:
    parts = [f"update_rejected={count}{_names(names)}"]
    if xds_type == "LDS" and envoy.listener_errors:
        parts += [f"listener {name}: {details}" for name, details in envoy.listener_errors[:3]]
    elif status is not None and status.last_error:
        error = status.last_error
        parts.append(f"istiod's lastError: {error[:LAST_ERROR_CHARS]}"
                     + ("..." if len(error) > LAST_ERROR_CHARS else ""))
    accepted = [envoy.versions[key] for key in [xds_type] + [f"{xds_type} {n}" for n in names]
                if envoy.versions.get(key)]
    if accepted:
        parts.append(f"Envoy still runs version {', '.join(sorted(set(accepted)))}")
    return "; ".join(parts)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == ERROR_LEVEL for f in findings)
