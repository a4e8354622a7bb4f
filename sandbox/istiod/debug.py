"""istiod's HTTP debug endpoints, on the monitoring port 15014 and the HTTP port 8080, and
`/ready` on 8080 only (pilot/pkg/bootstrap/server.go `initIstiodAdminServer`: the debug
handlers on both muxes, the readiness handler on httpMux)."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from envoy.admin.v3 import config_dump_pb2, config_dump_shared_pb2
from envoy.config.listener.v3 import listener_pb2
from google.protobuf import json_format

from sandbox.httpserver import BackgroundHTTPServer
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


# The debug handlers the sandbox serves, with istiod's help texts (`addDebugHandler` calls in
# pilot/pkg/xds/debug.go).
DEBUG_HANDLERS = {
    "/debug/config_dump": "ConfigDump in the form of the Envoy admin config dump API for "
                          "passed in proxyID",
    "/debug/list": "List all supported debug commands in json",
    "/debug/syncz": "Synchronization status of all Envoys connected to this Pilot instance",
}


def debug_index() -> str:
    """`/debug`: istiod's HTML index of its debug endpoints (`Debug` and `indexTmpl` in
    pilot/pkg/xds/debug.go), sorted by name, each linked by its absolute path."""
    import html

    rows = "".join(f"\n\t<tr>\n\t<td><a href='{path}'>{path}</a></td><td>{html.escape(text)}"
                   f"</td>\n\t</tr>\n" for path, text in sorted(DEBUG_HANDLERS.items()))
    return ("<html>\n<head>\n<title>Pilot Debug Console</title>\n</head>\n<body>\n<br/>\n"
            "<table id=\"endpoints\">\n<tr><th>Endpoint</th><th>Description</th></tr>\n"
            f"{rows}</table>\n<br/>\n</body>\n</html>\n")


def go_time(value: datetime | None) -> str:
    """Go's RFC 3339 time as encoding/json writes it (UTC, fractional seconds trimmed)."""
    if value is None:
        return GO_ZERO_TIME
    text = value.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def sync_status(conn: Connection) -> dict:
    """One syncz entry (`Syncz` in pilot/pkg/xds/debug.go). Empty strings are left out, like
    Go's `omitempty`; `proxy_version` is a field of `SyncStatus` that `Syncz` never sets."""
    proxy = conn.proxy
    watched = conn.watched_copy()
    status: dict = {"cluster_id": CLUSTER_ID, "proxy": proxy.id, "proxy_type": proxy.type,
                    "istio_version": proxy.istio_version}
    for type_url, prefix in SYNCZ_FIELDS.items():
        w = watched.get(type_url) or WatchedResource(type_url)
        status[f"{prefix}_sent"] = w.nonce_sent
        status[f"{prefix}_acked"] = w.nonce_acked
    status["resources"] = {type_url: {k: v for k, v in {
        "sent": w.nonce_sent, "acked": w.nonce_acked, "sentTime": go_time(w.sent_time),
        "lastError": w.last_error}.items() if v != ""} for type_url, w in watched.items()}
    return {k: v for k, v in status.items() if v not in ("", {})}


def syncz(ads: AdsServer, namespace: str | None = None) -> list[dict]:
    """Every connection, debug clients included (`Syncz` in pilot/pkg/xds/debug.go does not
    filter; the xDS debug type lists proxies only)."""
    return [sync_status(c) for c in ads.connections()
            if not namespace or c.proxy.namespace == namespace]


def config_dump(conn: Connection, include_eds: bool = False) -> dict:
    """`config_dump_message` as istiod writes it over HTTP (protojson)."""
    return protojson(config_dump_message(conn, include_eds))


def config_dump_message(conn: Connection, include_eds: bool = False):
    """This proxy's config generated from its last push context, as an Envoy admin v3
    ConfigDump the way istiod's `connectionConfigDump` (pilot/pkg/xds/debug.go) builds it:
    every section stamped with the proxy's `LastPushContext.PushVersion` – a global version
    that moves on with pushes this proxy did not get – with no `last_updated`, and empty
    Bootstrap, ScopedRoutes, Secrets and ECDS sections."""
    with conn.lock:
        push = conn.push
    mesh, version = push.mesh, push.version
    proxy = conn.proxy.with_pod(mesh)
    watched = conn.watched_copy()

    def section(type_url: str) -> list:
        w = watched.get(type_url)
        if w is None:  # getConfigDumpByResourceType: a type not watched is left out
            return []
        names = w.names if type_url in translate.NAMED_TYPES else []
        return [resources.to_any(type_url, r)
                for r in translate.for_subscription(mesh, proxy, type_url, names)]

    shared = config_dump_shared_pb2
    clusters = shared.ClustersConfigDump(version_info=version, dynamic_active_clusters=[
        shared.ClustersConfigDump.DynamicCluster(cluster=c) for c in section(CLUSTER_TYPE)])
    listeners = shared.ListenersConfigDump(version_info=version, dynamic_listeners=[
        shared.ListenersConfigDump.DynamicListener(
            name=_name(item), active_state=shared.ListenersConfigDump.DynamicListenerState(
                listener=item, version_info=version))
        for item in section(LISTENER_TYPE)])
    routes = shared.RoutesConfigDump(dynamic_route_configs=[
        shared.RoutesConfigDump.DynamicRouteConfig(version_info=version, route_config=r)
        for r in section(ROUTE_TYPE)])
    configs = [config_dump_pb2.BootstrapConfigDump(), clusters]
    if include_eds:  # after the clusters, as istiod orders them
        configs.append(shared.EndpointsConfigDump(dynamic_endpoint_configs=[
            shared.EndpointsConfigDump.DynamicEndpointConfig(version_info=version,
                                                             endpoint_config=e)
            for e in section(translate.ENDPOINT_TYPE)]))
    configs += [listeners, shared.ScopedRoutesConfigDump(), routes,
                config_dump_pb2.SecretsConfigDump(), shared.EcdsConfigDump()]
    dump = config_dump_pb2.ConfigDump()
    for message in configs:
        dump.configs.add().Pack(message)
    return dump


def protojson(message) -> dict:
    """istiod's JSON for a proto (`writeJSON` → pkg/util/protomarshal `ToJSONWithIndent`:
    jsonpb without OrigName): lowerCamelCase keys (`dynamicActiveClusters`, `versionInfo`),
    default values left out."""
    return json_format.MessageToDict(message, preserving_proto_field_name=False)


def _name(packed) -> str:
    listener = listener_pb2.Listener()
    packed.Unpack(listener)
    return listener.name


class DumpCache:
    """Rendered `/debug/config_dump` bodies per connection, valid while neither the mesh
    snapshot, nor the proxy's push version, nor its subscriptions change.

    Translating a proxy's config takes this Python double tens of milliseconds (a Go istiod
    serves these concurrently in far less): without the cache, `sync --verify` measured the
    double, not the client.
    """

    MAX_ENTRIES = 4096

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, bool], tuple[tuple, bytes]] = {}

    @staticmethod
    def _signature(conn: Connection) -> tuple:
        """(the proxy's last push context, proxy, what it subscribed per type). The push
        context and proxy objects themselves, compared by identity: holding them keeps their
        ids from being reused."""
        watched = conn.watched_copy()
        with conn.lock:
            push = conn.push
        return (push, conn.proxy, tuple(sorted((t, tuple(w.names))
                                               for t, w in watched.items())))

    def body(self, conn: Connection, include_eds: bool) -> bytes:
        key = (conn.id, include_eds)
        push, proxy, subscribed = signature = self._signature(conn)
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and cached[0][0] is push and cached[0][1] is proxy \
                and cached[0][2] == subscribed:
            return cached[1]
        body = (json.dumps(config_dump(conn, include_eds), indent=2) + "\n").encode()
        with self._lock:
            # Entries built on another push context are (about to be) dead: dropping them
            # also keeps no old mesh alive (the signatures hold their push context).
            self._entries = {k: v for k, v in self._entries.items() if v[0][0] is push}
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (signature, body)
        return body


class DebugServer:
    """A threaded HTTP server exposing the debug endpoints of one AdsServer."""

    def __init__(self, ads: AdsServer, address: tuple[str, int], ready=None,
                 debug_on_http=lambda: True, dumps: "DumpCache | None" = None):
        """`ready()`: /ready's answer, on the HTTP port (None: no /ready, the monitoring
        port). `debug_on_http()` False: /debug/* answers 404 (ENABLE_DEBUG_ON_HTTP=false in
        pilot/pkg/features; pilot/pkg/xds/debug.go `AddDebugHandlers` returns early)."""
        handler = type("Handler", (_Handler,), {
            "ads": ads, "ready": None if ready is None else staticmethod(ready),
            "dumps": dumps or DumpCache(), "debug_on_http": staticmethod(debug_on_http)})
        self.httpd = BackgroundHTTPServer(address, handler, name="istiod-debug")

    @property
    def address(self) -> tuple[str, int]:
        return self.httpd.server_address[:2]

    def start(self) -> None:
        self.httpd.start()

    def stop(self) -> None:
        self.httpd.stop()


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

    def _json(self, value, pretty: bool = False) -> None:
        """debug.go `writeJSON`: compact, indented by four spaces with `?pretty`."""
        self._send(200, json.dumps(value, indent=4) if pretty
                   else json.dumps(value, separators=(",", ":")), "application/json")

    def do_GET(self):  # noqa: N802 (http.server naming)
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if url.path == "/ready" and self.ready is not None:
                ok = self.ready()
                self._send(200 if ok else 503, "ready\n" if ok else "not ready\n")
            elif url.path.startswith("/debug") and not self.debug_on_http():
                self._send(404, "404 page not found\n")  # Go's http.NotFound
            elif url.path == "/debug/syncz":
                self._json(syncz(self.ads, query.get("namespace")), "pretty" in query)
            elif url.path == "/debug/config_dump":
                proxy_id = query.get("proxyID", "")
                if not proxy_id:
                    self._send(400, "You must provide a proxyID in the query string\n")
                    return
                conn = self.ads.connection_for(proxy_id)
                if conn is None:
                    self._send(404, NOT_CONNECTED)
                    return
                self._send(200, self.dumps.body(conn, "include_eds" in query),
                           "application/json")
            elif url.path == "/debug":
                self._send(200, debug_index(), "text/html; charset=utf-8")
            elif url.path == "/debug/list":
                self._json(sorted(path.removeprefix("/debug/") for path in DEBUG_HANDLERS
                                  if path != "/debug/list"), "pretty" in query)
            else:
                self._send(404, "404 page not found\n")  # Go's http.NotFound
        except BrokenPipeError:
            pass
        except Exception as e:  # a debug bug must not take the server down
            log.exception("debug handler failed for %s", self.path)
            self._send(500, f"internal error: {e}\n")
