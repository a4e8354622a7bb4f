"""istiod's `/debug/syncz` as plain objects: per proxy, per xDS type, Istio's status words.

Two shapes of syncz entries are read (both from istio.md):
- flat fields `cluster_sent`/`cluster_acked`, ... (older istiod): there is no subscription
  and no NACK information, so a type with nothing sent is NOT SENT (never IGNORED) and ERROR
  cannot be seen;
- `resources: {typeUrl: {sent, acked, sentTime, lastError}}` (newer): a type missing from
  `resources` was never subscribed (IGNORED); `lastError` on the latest push is ERROR; the
  status carries its age from `sentTime`.
When an entry has `resources`, it wins over the flat fields.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from kubectl_mesh.errors import BadInputError

SYNCED, NOT_SENT, STALE, ERROR, IGNORED = "SYNCED", "NOT SENT", "STALE", "ERROR", "IGNORED"
STATUSES = (SYNCED, NOT_SENT, STALE, ERROR, IGNORED)

# (short name, type URL, syncz flat-field prefix) in table order; ambient's WDS/WADS last.
# The URLs are istiod's (pkg/model/xds.go): SDS is the certificates pilot-agent or istiod
# serves, NDS the name table pilot-agent's DNS proxy asks for.
XDS_TYPES = (
    ("CDS", "type.googleapis.com/envoy.config.cluster.v3.Cluster", "cluster"),
    ("LDS", "type.googleapis.com/envoy.config.listener.v3.Listener", "listener"),
    ("EDS", "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "endpoint"),
    ("RDS", "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "route"),
    ("ECDS", "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig", "extensionconfig"),
    ("SDS", "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", None),
    ("NDS", "type.googleapis.com/istio.networking.nds.v1.NameTable", None),
    ("WDS", "type.googleapis.com/istio.workload.Address", None),
    ("WADS", "type.googleapis.com/istio.security.Authorization", None),
)
TYPE_NAMES = tuple(t[0] for t in XDS_TYPES)
_GO_ZERO_YEAR = 1
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_go_time(text: Any) -> datetime | None:
    """Go's RFC 3339 (nanoseconds allowed) → aware datetime; None for empty, unparsable or
    Go's zero time (`0001-01-01T00:00:00Z`, meaning never)."""
    if not isinstance(text, str):
        return None
    m = _TIME.match(text.strip())
    if not m:
        return None
    base, frac, zone = m.groups()
    value = datetime.fromisoformat(base + (f".{(frac + '000000')[:6]}" if frac else "")
                                   + ("+00:00" if zone == "Z" else zone))
    if value.year == _GO_ZERO_YEAR:
        return None
    return value.astimezone(timezone.utc)


def format_age(seconds: float) -> str:
    """A duration the way kubectl prints ages (apimachinery's HumanDuration): `12s`, `5m`,
    `2m30s`, `3h10m`, `2d4h`..."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, hours // 24 % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


@dataclasses.dataclass(frozen=True)
class TypeSync:
    """The sync state of one xDS type for one proxy."""

    type: str  # CDS, LDS, ... (or the type URL for a type this tool does not name)
    type_url: str
    status: str
    sent: str | None = None  # nonce
    acked: str | None = None  # nonce
    sent_time: datetime | None = None
    last_error: str | None = None

    def label(self, now: datetime) -> str:
        """`SYNCED (5m)`; the word alone when there is no send time (NOT SENT, IGNORED,
        older istiod)."""
        if self.sent_time is None or self.status in (NOT_SENT, IGNORED):
            return self.status
        return f"{self.status} ({format_age((now - self.sent_time).total_seconds())})"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "typeUrl": self.type_url}
        for key, value in (("sent", self.sent), ("acked", self.acked),
                           ("sentTime", self.sent_time), ("lastError", self.last_error)):
            if value is not None:
                data[key] = value.isoformat().replace("+00:00", "Z") if key == "sentTime" else value
        return data


def status_of(sent: str | None, acked: str | None, last_error: str | None,
              subscribed: bool = True) -> str:
    """Istio's word for one type: IGNORED (never subscribed), ERROR (latest push NACKed),
    NOT SENT (nothing sent), SYNCED (acked == sent), else STALE."""
    if not subscribed:
        return IGNORED
    if last_error:
        return ERROR
    if not sent:
        return NOT_SENT
    return SYNCED if sent == acked else STALE


@dataclasses.dataclass(frozen=True)
class ProxySync:
    """One proxy as istiod reports it; `istiod` is the replica that owns the connection and
    `also_listed_by` the other replicas that listed it too (a reconnect in progress, or a
    stale connection)."""

    name: str  # pod.namespace
    cluster_id: str | None
    proxy_type: str | None
    proxy_version: str | None
    istio_version: str | None
    types: tuple[TypeSync, ...]
    has_subscriptions: bool  # the entry carried `resources` (newer syncz)
    istiod: str | None = None
    also_listed_by: tuple[str, ...] = ()

    def type(self, name: str) -> TypeSync | None:
        return next((t for t in self.types if t.type == name), None)

    @property
    def last_activity(self) -> datetime | None:
        times = [t.sent_time for t in self.types if t.sent_time is not None]
        return max(times) if times else None

    @property
    def version(self) -> str | None:
        return self.istio_version or self.proxy_version

    @property
    def synced(self) -> bool:
        """SYNCED on every subscribed type. NOT SENT is only acceptable where an older
        istiod cannot tell "not subscribed" from "nothing sent yet"."""
        for t in self.types:
            if t.status in (SYNCED, IGNORED):
                continue
            if t.status == NOT_SENT and not self.has_subscriptions:
                continue
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "cluster": self.cluster_id, "istiod": self.istiod,
                "proxyType": self.proxy_type, "istioVersion": self.istio_version,
                "proxyVersion": self.proxy_version,
                "types": {t.type: t.to_dict() for t in self.types}}
        if self.also_listed_by:
            data["alsoListedBy"] = list(self.also_listed_by)
        return data


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def parse_entry(entry: Mapping[str, Any], istiod: str | None = None) -> ProxySync:
    """One syncz object → ProxySync (either shape, see the module docstring)."""
    resources = entry.get("resources")
    has_subs = isinstance(resources, Mapping)
    types = []
    known_urls = set()
    for short, url, prefix in XDS_TYPES:
        known_urls.add(url)
        if has_subs:
            r = resources.get(url)
            if r is None:
                types.append(TypeSync(short, url, IGNORED))
                continue
            sent, acked, err = _text(r.get("sent")), _text(r.get("acked")), _text(r.get("lastError"))
            types.append(TypeSync(short, url, status_of(sent, acked, err), sent, acked,
                                  parse_go_time(r.get("sentTime")), err))
        elif prefix is not None:
            sent, acked = _text(entry.get(f"{prefix}_sent")), _text(entry.get(f"{prefix}_acked"))
            types.append(TypeSync(short, url, status_of(sent, acked, None), sent, acked))
    if has_subs:  # types this tool has no column for still count for --wait and the data
        for url in sorted(set(resources) - known_urls):
            r = resources[url] if isinstance(resources[url], Mapping) else {}
            sent, acked, err = _text(r.get("sent")), _text(r.get("acked")), _text(r.get("lastError"))
            types.append(TypeSync(url, url, status_of(sent, acked, err), sent, acked,
                                  parse_go_time(r.get("sentTime")), err))
    return ProxySync(name=str(entry.get("proxy")), cluster_id=_text(entry.get("cluster_id")),
                     proxy_type=_text(entry.get("proxy_type")),
                     proxy_version=_text(entry.get("proxy_version")),
                     istio_version=_text(entry.get("istio_version")), types=tuple(types),
                     has_subscriptions=has_subs, istiod=istiod)


def parse_syncz(payload: Any, istiod: str | None = None) -> list[ProxySync]:
    """A decoded `/debug/syncz` body (a JSON array) → proxies; BadInputError if it is not
    one. Entries without a `proxy` id are left out."""
    if payload is None:
        return []  # Go's encoding/json writes `null` for an empty slice
    if not isinstance(payload, list):
        raise BadInputError(f"syncz from {istiod or 'istiod'} is not a JSON array "
                            f"(got {type(payload).__name__})",
                            hint="is this istiod's /debug/syncz on port 15014?")
    return [parse_entry(e, istiod) for e in payload if isinstance(e, Mapping) and e.get("proxy")]


# envoy.service.status.v3.ConfigStatus → Istio's word (istioctl/pkg/writer/pilot/status.go
# `formatStatus`: UNKNOWN shows as IGNORED)
_CONFIG_STATUS = {"SYNCED": SYNCED, "NOT_SENT": NOT_SENT, "STALE": STALE, "ERROR": ERROR,
                  "UNKNOWN": IGNORED}


def from_client_config(config, istiod: str | None = None) -> ProxySync:
    """One `ClientConfig` of the xDS debug type `istio.io/debug/syncz` (a
    `kubectl_mesh.xds.messages.ClientConfig`) → ProxySync. It lists the types the proxy
    watches (others are IGNORED), each with its status and last send time; there are no
    nonces and no proxy type."""
    by_url = {c.type_url: c for c in config.configs}
    types = []
    for short, url, _ in XDS_TYPES:
        c = by_url.pop(url, None)
        if c is None:
            types.append(TypeSync(short, url, IGNORED))
        else:
            types.append(TypeSync(short, url, _CONFIG_STATUS.get(c.config_status, IGNORED),
                                  sent_time=c.last_updated, last_error=c.error))
    for url in sorted(by_url):
        c = by_url[url]
        types.append(TypeSync(url, url, _CONFIG_STATUS.get(c.config_status, IGNORED),
                              sent_time=c.last_updated, last_error=c.error))
    meta = config.metadata
    return ProxySync(name=config.node_id, cluster_id=_text(meta.get("CLUSTER_ID")),
                     proxy_type=None, proxy_version=None,
                     istio_version=_text(meta.get("ISTIO_VERSION")), types=tuple(types),
                     has_subscriptions=True, istiod=istiod)


def merge_replicas(payloads: Mapping[str, Any]) -> list[ProxySync]:
    """Merge the syncz of several istiod replicas ({istiod pod name: payload}) so each proxy
    is listed once (see `merge_proxies`)."""
    return merge_proxies({istiod: parse_syncz(payload, istiod)
                          for istiod, payload in payloads.items()})


def merge_proxies(listed: Mapping[str, Iterable[ProxySync]]) -> list[ProxySync]:
    """Merge what several istiod replicas list ({istiod name: proxies}) so each proxy is
    listed once, owned by the replica with the most recent activity (latest send time;
    ties and missing times: the replica name first in order). The others are noted in
    `also_listed_by`. Sorted by proxy name."""
    seen: dict[str, list[ProxySync]] = {}
    for istiod in sorted(listed):
        for proxy in listed[istiod]:
            seen.setdefault(proxy.name, []).append(proxy)
    merged = []
    floor = datetime.min.replace(tzinfo=timezone.utc)
    for name in sorted(seen):
        candidates = seen[name]
        # max() keeps the first of equal keys: the replica first in name order.
        owner = max(candidates, key=lambda p: p.last_activity or floor)
        others = tuple(p.istiod for p in candidates if p is not owner and p.istiod)
        merged.append(dataclasses.replace(owner, also_listed_by=others))
    return merged


def not_synced(proxies: Iterable[ProxySync]) -> list[ProxySync]:
    """The proxies that are not SYNCED on every subscribed type."""
    return [p for p in proxies if not p.synced]


def all_synced(proxies: Iterable[ProxySync]) -> bool:
    """The `--wait` predicate: at least one proxy selected, and every one SYNCED on every
    subscribed type (an empty selection is "not yet": the proxy may not have connected)."""
    proxies = list(proxies)
    return bool(proxies) and not not_synced(proxies)
