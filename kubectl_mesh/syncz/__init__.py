"""Proxy sync status from istiod's `/debug/syncz`: parse (older flat and newer `resources`
shapes), merge istiod replicas, Istio's status words with ages, the `--wait` predicate, and
the proxy-status table. Pure: the caller fetches syncz from each istiod."""

from kubectl_mesh.syncz.model import (
    ERROR, IGNORED, NOT_SENT, STALE, STATUSES, SYNCED, TYPE_NAMES, XDS_TYPES, ProxySync,
    TypeSync, all_synced, format_age, from_client_config, merge_proxies, merge_replicas,
    not_synced, parse_entry, parse_go_time,
    parse_syncz, status_of,
)
from kubectl_mesh.syncz.render import notes, shown_types, table, write_status

__all__ = [
    "ERROR", "IGNORED", "NOT_SENT", "STALE", "STATUSES", "SYNCED", "TYPE_NAMES", "XDS_TYPES",
    "ProxySync", "TypeSync", "all_synced", "format_age", "from_client_config", "merge_proxies",
    "merge_replicas", "not_synced", "notes",
    "parse_entry", "parse_go_time", "parse_syncz", "shown_types", "status_of", "table",
    "write_status",
]
