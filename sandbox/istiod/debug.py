"""istiod's HTTP debug endpoints on port 15014: /debug/syncz, /debug/config_dump, /ready."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from sandbox.istiod import resources, translate
from sandbox.istiod.ads import AdsServer, Connection, WatchedResource
from sandbox.istiod.clusters import CLUSTER_TYPE
from sandbox.istiod.listeners import LISTENER_TYPE
from sandbox.istiod.routes import ROUTE_TYPE

log = logging.getLogger("sandbox.istiod.debug")

CLUSTER_ID = "Kubernetes"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
NOT_CONNECTED = "Proxy not connected to this Pilot instance. It may be connected to another instance.\n"
# syncz's flat fields per type, as istiod names them.
SYNCZ_FIELDS = {
    CLUSTER_TYPE: "cluster",
    LISTENER_TYPE: "listener",
    ROUTE_TYPE: "route",
    translate.ENDPOINT_TYPE: "endpoint",
    translate.EXTENSION_CONFIG_TYPE: "extensionconfig",
}


def go_time(value: datetime | None) -> str:
    """Go's RFC 3339 time as encoding/json writes it (UTC, fractional seconds trimmed)."""
    if value is None:
        return GO_ZERO_TIME
    text = value.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def sync_status(conn: Connection) -> dict:
    """One syncz entry. Empty strings are left out, like Go's `omitempty`."""
    proxy = conn.proxy
    watched = conn.watched_copy()
    status: dict = {"cluster_id": CLUSTER_ID, "proxy": proxy.id, "proxy_type": proxy.type,
                    "proxy_version": proxy.envoy_version, "istio_version": proxy.istio_version}
    for type_url, prefix in SYNCZ_FIELDS.items():
        w = watched.get(type_url) or WatchedResource(type_url)
        status[f"{prefix}_sent"] = w.nonce_sent
        status[f"{prefix}_acked"] = w.nonce_acked
    status["resources"] = {type_url: {k: v for k, v in {
        "sent": w.nonce_sent, "acked": w.nonce_acked, "sentTime": go_time(w.sent_time),
        "lastError": w.last_error}.items() if v != ""} for type_url, w in watched.items()}
    return {k: v for k, v in status.items() if v not in ("", {})}


def syncz(ads: AdsServer, namespace: str | None = None) -> list[dict]:
    return [sync_status(c) for c in ads.connections()
            if not namespace or c.proxy.namespace == namespace]


def config_dump(ads: AdsServer, conn: Connection, include_eds: bool = False) -> dict:
    """What istiod would send this proxy now, as an Envoy admin v3 ConfigDump."""
    mesh = ads.mesh
    proxy = conn.proxy.with_pod(mesh)
    watched = conn.watched_copy()

    def section(type_url: str) -> tuple[list[dict], str, str]:
        w = watched.get(type_url) or WatchedResource(type_url)
        names = w.names if type_url in translate.NAMED_TYPES else []
        content = translate.for_subscription(mesh, proxy, type_url, names)
        items = [resources.normalized(type_url, r) for r in content]
        return items, w.version_sent, (go_time(w.sent_time) if w.sent_time else "")

    def entry(version: str, updated: str, **kwargs) -> dict:
        item = {"version_info": version} if version else {}
        item.update(kwargs)
        if updated:
            item["last_updated"] = updated
        return item

    clusters, cds_version, cds_time = section(CLUSTER_TYPE)
    listeners, lds_version, lds_time = section(LISTENER_TYPE)
    routes, rds_version, rds_time = section(ROUTE_TYPE)
    configs = [
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
         **({"version_info": cds_version} if cds_version else {}),
         "dynamic_active_clusters": [entry(cds_version, cds_time, cluster=c) for c in clusters]},
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
         **({"version_info": lds_version} if lds_version else {}),
         "dynamic_listeners": [{"name": item["name"], "active_state": entry(
             lds_version, lds_time, listener=item)} for item in listeners]},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
         "dynamic_route_configs": [entry(rds_version, rds_time, route_config=r) for r in routes]},
    ]
    if include_eds:
        endpoints, eds_version, eds_time = section(translate.ENDPOINT_TYPE)
        configs.append({"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
                        "dynamic_endpoint_configs": [entry(eds_version, eds_time, endpoint_config=e)
                                                     for e in endpoints]})
    return {"configs": configs}


class DumpCache:
    """Rendered `/debug/config_dump` bodies per connection, valid while neither the mesh
    snapshot nor what istiod sent that proxy changes.

    Translating a proxy's config takes this Python double tens of milliseconds (a Go istiod
    serves these concurrently in far less): without the cache, `sync --verify` measured the
    double, not the client.
    """

    MAX_ENTRIES = 4096

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, bool], tuple[tuple, bytes]] = {}

    @staticmethod
    def _signature(ads: AdsServer, conn: Connection) -> tuple:
        """(mesh snapshot, proxy, what was sent per type). The snapshot and proxy objects
        themselves, compared by identity: holding them keeps their ids from being reused."""
        watched = conn.watched_copy()
        return (ads.mesh, conn.proxy, tuple(sorted(
            (t, tuple(w.names), w.version_sent, w.nonce_sent, w.sent_time)
            for t, w in watched.items())))

    def body(self, ads: AdsServer, conn: Connection, include_eds: bool) -> bytes:
        key = (conn.id, include_eds)
        mesh, proxy, sent = signature = self._signature(ads, conn)
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and cached[0][0] is mesh and cached[0][1] is proxy \
                and cached[0][2] == sent:
            return cached[1]
        body = (json.dumps(config_dump(ads, conn, include_eds), indent=2) + "\n").encode()
        with self._lock:
            # Entries built on an older snapshot are dead: dropping them also keeps no
            # old mesh alive (the signatures hold their snapshot).
            self._entries = {k: v for k, v in self._entries.items() if v[0][0] is mesh}
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (signature, body)
        return body


class DebugServer:
    """A threaded HTTP server exposing the debug endpoints of one AdsServer."""

    def __init__(self, ads: AdsServer, address: tuple[str, int], ready=lambda: True):
        handler = type("Handler", (_Handler,), {"ads": ads, "ready": staticmethod(ready),
                                                "dumps": DumpCache()})
        self.httpd = ThreadingHTTPServer(address, handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="istiod-debug")

    @property
    def address(self) -> tuple[str, int]:
        return self.httpd.server_address[:2]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    ads: AdsServer
    dumps: DumpCache
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # route http.server's access log to logging
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, code: int, body: str | bytes,
              content_type: str = "text/plain; charset=utf-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, value) -> None:
        self._send(200, json.dumps(value, indent=2) + "\n", "application/json")

    def do_GET(self):  # noqa: N802 (http.server naming)
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if url.path == "/ready":
                ok = self.ready()
                self._send(200 if ok else 503, "ready\n" if ok else "not ready\n")
            elif url.path == "/debug/syncz":
                self._json(syncz(self.ads, query.get("namespace")))
            elif url.path == "/debug/config_dump":
                proxy_id = query.get("proxyID", "")
                if not proxy_id:
                    self._send(400, "You must provide a proxyID in the query string\n")
                    return
                conn = self.ads.connection_for(proxy_id)
                if conn is None:
                    self._send(404, NOT_CONNECTED)
                    return
                self._send(200, self.dumps.body(self.ads, conn, "include_eds" in query),
                           "application/json")
            elif url.path in ("/debug", "/debug/list"):
                self._json(["/debug/syncz", "/debug/config_dump", "/ready"])
            else:
                self._send(404, f"404 page not found: {url.path}\n")
        except BrokenPipeError:
            pass
        except Exception as e:  # a debug bug must not take the server down
            log.exception("debug handler failed for %s", self.path)
            self._send(500, f"internal error: {e}\n")
