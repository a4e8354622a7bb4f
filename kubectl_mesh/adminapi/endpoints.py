"""Envoy's admin endpoints and which of them change the proxy.

The table is Envoy's own (`AdminImpl::AdminImpl`'s `handlers_`, source/server/admin/admin.cc):
a handler made with `mutates_state = true` answers anything but POST with
`405 Method GET not allowed, POST required.` (`AdminImpl::makeRequest`). Envoy picks the
handler whose prefix equals the path before `?` exactly, so the same comparison here decides
what needs `--allow-write`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from kubectl_mesh.errors import UsageError

# path -> Envoy's help text, for the endpoints that change the proxy (POST only).
WRITES = {
    "/cpuprofiler": "enable/disable the CPU profiler",
    "/drain_listeners": "drain listeners",
    "/healthcheck/fail": "cause the server to fail health checks",
    "/healthcheck/ok": "cause the server to pass health checks",
    "/heapprofiler": "enable/disable the heap profiler",
    "/logging": "query/change logging levels",
    "/quitquitquit": "exit the server",
    "/reopen_logs": "reopen access logs",
    "/reset_counters": "reset all counters to zero",
    "/runtime_modify": "adds or modifies runtime values as passed in query parameters",
    "/stats/recentlookups/clear": "clear list of stat-name lookups and counter",
    "/stats/recentlookups/disable": "disable recording of reset stat-name lookup names",
    "/stats/recentlookups/enable": "enable recording of reset stat-name lookup names",
}
# The read-only endpoints of a plain Envoy (GET).
READS = ("/", "/certs", "/clusters", "/config_dump", "/contention", "/heap_dump", "/help",
         "/hot_restart_version", "/init_dump", "/listeners", "/memory", "/ready", "/runtime",
         "/server_info", "/stats", "/stats/prometheus", "/stats/recentlookups")
# Characters kept as typed: RFC 3986 path and query characters, and `%` so that what the user
# already encoded stays encoded. Anything else (space, `|`, `^`, `\`, `"`, ...) is
# percent-encoded; Envoy decodes query parameters (`Utility::QueryParamsMulti`).
_SAFE = "/?&=%:@!$'()*+,;-._~"


@dataclass(frozen=True)
class AdminPath:
    """What the user asked for: `target` is the encoded path and query sent to Envoy."""

    path: str  # before `?`
    target: str

    @classmethod
    def parse(cls, text: str) -> AdminPath:
        """`/stats?filter=http` as typed (`stats?filter=http` too): checked, encoded."""
        raw = text.strip()
        if not raw:
            raise UsageError("the admin PATH is empty",
                             hint="e.g. /server_info or /stats?filter=http")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
            raise UsageError(f"the admin PATH {raw!r} has control characters")
        if "#" in raw:
            raise UsageError(f"the admin PATH {raw!r} has a '#'", hint="write it as %23")
        if "://" in raw.split("?", 1)[0]:
            raise UsageError(f"give the admin PATH only, not a URL: {raw!r}",
                             hint="e.g. /config_dump?resource=dynamic_active_clusters")
        if not raw.startswith("/"):
            raw = "/" + raw
        target = quote(raw, safe=_SAFE)
        return cls(path=target.split("?", 1)[0], target=target)

    @property
    def writes(self) -> bool:
        """Whether this endpoint changes the proxy (Envoy answers it to POST only)."""
        return self.path in WRITES

    @property
    def known(self) -> bool:
        return self.path in WRITES or self.path in READS

    def method(self, allow_write: bool) -> str:
        """POST for what changes the proxy (and, with --allow-write, for endpoints this table
        does not know, e.g. an extension's `/tap`); GET otherwise."""
        if self.writes or (allow_write and not self.known):
            return "POST"
        return "GET"

    def what(self) -> str:
        """Envoy's words for what a write does."""
        return WRITES.get(self.path, "an endpoint this command does not know")
