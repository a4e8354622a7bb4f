"""`--verify`: what the proxy's own Envoy says, against what istiod believes.

istiod only knows what it sent and what came back. The Envoy side adds:
- `update_rejected` counters and `version_text` (the last ACCEPTED version) per
  subscription (`cluster_manager.cds.*`, `listener_manager.lds.*`,
  `http.<prefix>.rds.<route>.*`, `cluster.<name>.*` for EDS) – CDS/RDS/EDS rejections are
  visible only here and in istiod's lastError;
- LDS `error_state.details` in the config dump – the one place Envoy keeps its error text;
- `control_plane.connected_state` / `control_plane.identifier` – is the ADS stream up, and to
  which control plane.

LAGGING – istiod says SYNCED, but the Envoy does not run what istiod last sent it – compares
per type what istiod last SENT this proxy with the version Envoy last accepted. What was sent
is in syncz itself: istiod makes every nonce as the response's version plus a UUID (`pushXds`
in pilot/pkg/xds/xdsgen.go sends `VersionInfo: PushVersion, Nonce: nonce(PushVersion)`;
`nonce()` in discovery.go), and syncz lists the last nonce sent per type. istiod's
`/debug/config_dump` cannot tell: it stamps every section with the proxy's
`LastPushContext.PushVersion` (`connectionConfigDump` in debug.go), a global version that moves
on with pushes this proxy needs nothing from (`pushConnection` in ads.go updates it before
`ProxyNeedsPush` decides), and RDS is skipped on most pushes (`rdsNeedsPush` in rds.go).
- CDS, LDS: one wildcard subscription each; Envoy's `version_text` must be the sent version.
- RDS: each route name is its own subscription, and with delta xDS a response carries only
  some of them: at least one must hold the sent version.
- EDS is not compared: istiod pushes endpoints incrementally, so the clusters' versions differ.
A nonce not of that form (another control plane), or a proxy that keeps no such stats, leaves
the type unchecked. Real Istio proxies keep few stats: the bootstrap's stats matcher includes
`cluster_manager`, `listener_manager`, `server`, `cluster.xds-grpc` and `wasm` only
(pkg/bootstrap/config.go `requiredEnvoyStatsMatcherInclusionPrefixes`), so RDS, EDS and the
ADS stream go unchecked unless the proxy config's `proxyStatsMatcher` adds them: each proxy
gets an UNCHECKED finding of severity "info" naming what, summed up in one line.
Pure: `envoy_state()` parses fetched JSON, `proxy_findings()` compares; fetching is in probe.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from kubectl_mesh.syncz import ERROR, SYNCED, ProxySync

# /stats?filter= for everything the checks read (a partial regex, as Envoy applies it).
STATS_FILTER = r"(\.version_text|\.update_rejected|^control_plane\.(connected_state|identifier))$"
LISTENERS_MASK = "dynamic_listeners"

REJECTED, LAGGING, DISCONNECTED, UNKNOWN, GONE, UNREACHABLE, UNCHECKED = (
    "REJECTED", "LAGGING", "DISCONNECTED", "UNKNOWN", "GONE", "UNREACHABLE", "UNCHECKED")
ERROR_LEVEL, WARNING_LEVEL, INFO_LEVEL = "error", "warning", "info"
# what a proxy config adds to Istio's stats matcher for every check here
STATS_MATCHER_HINT = ('proxyStatsMatcher: {inclusionPrefixes: [control_plane], '
                      'inclusionSuffixes: [update_rejected, version_text]}')
LAST_ERROR_CHARS = 200  # the full NACK text is in the stderr notes and in -o json
# The UUID istiod appends to the push version in a nonce (uuid.New().String(): lower-case hex).
_NONCE_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


@dataclass(frozen=True)
class Finding:
    """One thing `--verify` found about one proxy."""

    proxy: str  # pod.namespace
    check: str  # REJECTED, LAGGING, DISCONNECTED, UNKNOWN, GONE, UNREACHABLE, UNCHECKED
    detail: str
    type: str = ""  # CDS, LDS, RDS, EDS when the finding is about one xDS type
    severity: str = ERROR_LEVEL  # "warning" and "info" do not change the exit code

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
    # Envoy's line when it could not write its listeners as JSON (a rejected listener of a
    # type its build does not know); the rejected listeners are then not known by name
    listeners_unprintable: str = ""

    def unchecked(self) -> list[str]:
        """What this Envoy keeps no stats for: the xDS types and "ADS stream"."""
        kept = {key.partition(" ")[0] for key in (*self.versions, *self.rejected)}
        out = [t for t in ("CDS", "LDS", "RDS", "EDS") if t not in kept]
        return out + (["ADS stream"] if self.connected is None else [])

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
        # istiod's `alt_stat_name` ends the cluster's name in the tag marker `;`
        return f"EDS {base[len('cluster.'):].removesuffix(';')}", leaf
    return None


def envoy_state(stats: Mapping[str, Any], listeners_dump: Mapping[str, Any] | None,
                listeners_unprintable: str = "") -> EnvoyState:
    """Parse `/stats?format=json` (filtered) and `/config_dump?mask=dynamic_listeners`
    (`listeners_unprintable`: Envoy's line instead of that dump)."""
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
    return EnvoyState(connected, control_plane, versions, rejected, tuple(errors),
                      listeners_unprintable)


def sent_version(nonce: str | None) -> str | None:
    """The version istiod sent with the response this nonce names: the nonce minus the UUID
    istiod appends (`nonce()` in pilot/pkg/xds/discovery.go). None for other nonces."""
    if not nonce or len(nonce) <= 36 or not _NONCE_UUID.search(nonce):
        return None
    return nonce[:-36]


def lagging_versions(xds_type: str, sent_nonce: str | None,
                     envoy: EnvoyState) -> list[tuple[str, str, str]]:
    """[(subscription, Envoy's version, the version istiod sent)] where Envoy does not hold
    what istiod last sent for `xds_type` (see the module docstring); [] when it does, or when
    that cannot be told."""
    sent = sent_version(sent_nonce)
    if sent is None:
        return []
    if xds_type in ("CDS", "LDS"):
        if xds_type not in envoy.versions:  # the stat is not kept: nothing to compare
            return []
        have = envoy.versions[xds_type]
        return [] if have == sent else [(xds_type, have, sent)]
    if xds_type == "RDS":
        routes = sorted((k, v) for k, v in envoy.versions.items() if k.startswith("RDS "))
        if not routes or any(v == sent for _, v in routes):
            return []
        return [(k, v, sent) for k, v in routes]
    return []


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


def pod_control_plane(labels: Mapping[str, str], annotations: Mapping[str, str]) -> str | None:
    """The control plane a pod's sidecar was injected for, from what the injector wrote on it:
    the `sidecar.istio.io/status` annotation's revision (pkg/kube/inject/inject.go
    `SidecarInjectionStatus`), else the `istio.io/rev` label. Envoy's own
    `control_plane.identifier` is empty on real sidecars: its ADS stream goes to pilot-agent
    (pkg/istio-agent/xds_proxy.go), which sends no identifier of istiod's."""
    import json

    revision = None
    try:
        status = json.loads(annotations.get("sidecar.istio.io/status") or "{}")
        revision = status.get("revision") if isinstance(status, dict) else None
    except ValueError:
        pass
    revision = revision or labels.get("istio.io/rev")
    return f"revision {revision}" if revision else None


def proxy_findings(proxy_id: str, sync: ProxySync | None, envoy: EnvoyState,
                   injected_for: str | None = None) -> list[Finding]:
    """Everything wrong with one proxy that istiod's syncz alone cannot show.

    `sync` is None for a proxy no istiod lists. A version is "lagging" only where istiod says
    SYNCED: that is the case where istiod believes the proxy holds a version it does not.
    """
    out: list[Finding] = []
    if sync is None:
        plane = control_plane_id(envoy.control_plane) if envoy.control_plane else \
            (f"of {injected_for}" if injected_for else "unknown")
        if envoy.connected is None:  # no control_plane stats (Istio's default matcher)
            where = ("keeping no control_plane stats, so its ADS stream is not known"
                     + (f"; it was injected for {injected_for}" if injected_for else ""))
        else:
            where = ("connected to control plane " + plane if envoy.connected else
                     "not connected to any control plane") + \
                (f"; it was injected for {injected_for}" if injected_for and envoy.control_plane
                 else "")
        out.append(Finding(proxy_id, UNKNOWN, f"no istiod lists this proxy; its Envoy is {where} "
                           "(another revision or istiod address?)"))
    elif envoy.connected is False:
        out.append(Finding(proxy_id, DISCONNECTED, "control_plane.connected_state is 0: the ADS "
                           f"stream to the control plane is down (istiod {sync.istiod} still "
                           "lists it)"))
    missing = envoy.unchecked()
    if missing:
        out.append(Finding(proxy_id, UNCHECKED, f"not checked: {', '.join(missing)} (its Envoy "
                           f"keeps no such stats; to check them add {STATS_MATCHER_HINT} to "
                           "its proxy config)", severity=INFO_LEVEL))
    for xds_type in ("CDS", "LDS", "RDS", "EDS"):
        status = sync.type(xds_type) if sync is not None else None
        count, names = envoy.rejected_total(xds_type)
        lagging = lagging_versions(xds_type, status.sent, envoy) if status is not None else []
        if status is not None and status.status == ERROR or (
                xds_type == "LDS" and (envoy.listener_errors or envoy.listeners_unprintable)):
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
            shown = ", ".join(f"{k}: Envoy has {have or 'none'}, istiod sent {sent}"
                              for k, have, sent in lagging[:3])
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
    if xds_type == "LDS" and envoy.listeners_unprintable:
        parts.append("Envoy cannot print the rejected listeners (a type its build does not "
                     f"know?): {envoy.listeners_unprintable[:LAST_ERROR_CHARS]}")
    accepted = [envoy.versions[key] for key in [xds_type] + [f"{xds_type} {n}" for n in names]
                if envoy.versions.get(key)]
    if accepted:
        parts.append(f"Envoy still runs version {', '.join(sorted(set(accepted)))}")
    return "; ".join(parts)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == ERROR_LEVEL for f in findings)
