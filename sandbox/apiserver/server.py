"""The Kubernetes API double: HTTPS, bearer tokens, RBAC denials, discovery, CRUD, watch.

Pod subresources that need a running pod (log, exec, attach, portforward) are delegated to
a `PodHooks` object (the sandbox runtime); the upgrade protocols live in `sandbox.streams`.
"""

from __future__ import annotations

import copy
import datetime
import http.server
import json
import ssl
import urllib.parse
from typing import Protocol

import yaml

from ..httpserver import BackgroundHTTPServer, server_context
from . import kinds, openapi, patch, selectors, tables
from .auth import Authorizer, request_attributes
from .latency import Latency
from .version import ServedVersion
from .store import Conflict, Gone, NotFound, Store
from .tokens import Tokens, service_account_uid

STREAMING = ("exec", "attach", "portforward")


class PodHooks(Protocol):
    def on_pod_subresource(self, handler: "Handler", verb: str, pod: dict, sub: str,
                           query: dict[str, list[str]]) -> None: ...


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.body = status_body(code, reason, message, details)
        self.code = code


def filtered_event(ev, passes) -> tuple[str, dict] | None:
    """The (type, object) a watch with selectors `passes` sees for a store event: an object
    that starts to match is ADDED, one that stops matching is DELETED (its previous content
    at the event's resourceVersion), as k8s.io/apiserver pkg/storage/cacher/cache_watcher.go
    `convertToWatchEvent` does; None when the watch is not interested."""
    now = ev.type != "DELETED" and passes(ev.obj)
    before = passes(ev.obj if ev.type == "DELETED" else ev.old) if (
        ev.type == "DELETED" or ev.old is not None) else False
    if now and not before:
        return "ADDED", ev.obj
    if now:
        return "MODIFIED", ev.obj
    if before:
        if ev.type == "DELETED":
            return "DELETED", ev.obj
        gone = copy.deepcopy(ev.old)
        gone["metadata"]["resourceVersion"] = ev.obj["metadata"]["resourceVersion"]
        return "DELETED", gone
    return None


def not_found(kind: kinds.Kind, name: str) -> ApiError:
    group = f".{kind.group}" if kind.group else ""
    return ApiError(404, "NotFound", f'{kind.plural}{group} "{name}" not found',
                    {"name": name, "group": kind.group, "kind": kind.plural})


class ChunkedResponses:
    """A streamed 200 answer (logs, watches) in HTTP/1.1 chunked encoding; mixed into the API
    double's and the sandbox kubelet's request handlers."""

    def start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class Handler(ChunkedResponses, http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_HTTPServer"

    def setup(self):
        self.server.api.latency.wait()  # the TCP + TLS handshake's round trip
        super().setup()

    def log_message(self, format, *args):  # noqa: A002 - quiet by default
        if self.server.api.verbose:
            super().log_message(format, *args)

    # -- plumbing
    def send_json(self, code: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def read_body(self) -> bytes:
        self.body_read = True
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if not size:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def read_object(self):
        raw = self.read_body()
        ctype = self.headers.get("Content-Type", "")
        if "protobuf" in ctype or "cbor" in ctype:
            # kubectl's typed generators (`kubectl create configmap|secret`) send protobuf,
            # which this double does not decode; `kubectl apply -f` sends JSON.
            raise ApiError(415, "UnsupportedMediaType",
                           f'the sandbox API does not decode "{ctype}" bodies; accepted media '
                           'types: application/json, application/yaml (use kubectl apply -f)')
        try:
            if "yaml" in ctype:
                return yaml.safe_load(raw)
            return json.loads(raw or b"{}")
        except (ValueError, yaml.YAMLError) as e:
            raise ApiError(400, "BadRequest", f"the body of the request was in an unknown format: {e}")

    # -- verbs
    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        self.body_read = False
        self.server.api.latency.wait()
        try:
            user = self.server.api.authorizer.authenticate(self.headers.get("Authorization"))
            if user is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            api = self.server.api
            self.user = api.authorizer.impersonate(
                user, self.headers, request_attributes(method, url.path, query),
                constrained=api.version.constrained_impersonation())
            self.server.api.route(self, method, url.path.rstrip("/") or "/", query)
        except ApiError as e:
            self._safe_error(e.code, e.body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as e:  # an API server answers 500, it does not die
            self._safe_error(500, status_body(500, "InternalError", f"internal error: {e!r}"))
            if self.server.api.verbose:
                raise

    def _safe_error(self, code: int, body: dict) -> None:
        # A request refused before its body was read (401, 403, 404...) must not leave the
        # body on a kept-alive connection, where it would be read as the next request. Go's
        # server discards up to 256 KiB of it, else closes the connection (net/http
        # server.go, `(*response).finishRequest` and `maxPostHandlerReadBytes`).
        if not self.body_read:
            if int(self.headers.get("Content-Length") or 0) <= 256 << 10:
                self.read_body()
            else:
                self.close_connection = True
        try:
            self.send_json(code, body)
        except OSError:
            self.close_connection = True


class _HTTPServer(BackgroundHTTPServer):
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops bursts of port-forwards (1 s SYN retries)
    api: "Api"


def _bool(query: dict, name: str) -> bool:
    """Go's strconv.ParseBool, as the real server parses query flags."""
    return (query.get(name) or ["false"])[-1].lower() in ("1", "t", "true")


def _one(query: dict, name: str, default: str | None = None) -> str | None:
    values = query.get(name)
    return values[-1] if values else default


class Api:
    """Routing and verbs over the store."""

    def __init__(self, store: Store, authorizer: Authorizer, hooks: PodHooks | None = None,
                 verbose: bool = False):
        self.store = store
        self.authorizer = authorizer
        self.hooks = hooks
        self.verbose = verbose
        self.latency = Latency(None)  # a Sandbox points it at its state dir
        self.version = ServedVersion(None)  # likewise
        self.admission: list = []  # callables(kind, obj, old) run before a write
        self.tokens = Tokens()  # TokenRequest / TokenReview

    # -- routing
    def route(self, h: Handler, method: str, path: str, query: dict) -> None:
        if path == "/version":
            return h.send_json(200, self.version.info())
        if path in ("/healthz", "/readyz", "/livez"):
            return h.send_json(200, {"status": "ok"})
        if path == "/api":
            return h.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                     "serverAddressByClientCIDRs": []})
        if path == "/apis":
            return h.send_json(200, self._api_group_list())
        if path == "/openapi/v3":
            return h.send_json(200, openapi.root())
        if path.startswith("/openapi/v3/"):
            doc = openapi.group_version(path[len("/openapi/v3/"):])
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return h.send_json(200, doc)
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 2:
            if len(parts) == 2:
                return h.send_json(200, self._api_group(parts[1]))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            if group and group not in kinds.groups() or version not in (kinds.groups().get(group) or ("v1",)):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return h.send_json(200, kinds.resource_list(group, version))
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        kind = kinds.by_path(group, version, rest[0])
        if kind is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if not kind.namespaced:
            namespace = None if name is None and rest[0] != "namespaces" else ""
            if kind.plural == "namespaces":
                namespace = ""
        self._handle(h, method, kind, version, namespace, name, sub, query)

    def _api_group(self, group: str) -> dict:
        versions = kinds.groups().get(group)
        if not versions:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs,
                "preferredVersion": gvs[0]}

    def _api_group_list(self) -> dict:
        out = []
        for group in kinds.groups():
            g = self._api_group(group)
            del g["kind"], g["apiVersion"]
            out.append(g)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}

    # -- verbs
    def _handle(self, h, method, kind, version, namespace, name, sub, query) -> None:
        verb = {"GET": "get" if name else "list", "HEAD": "get", "POST": "create",
                "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}[method]
        if verb == "list" and _bool(query, "watch"):
            verb = "watch"
        resource = f"{kind.plural}/{sub}" if sub else kind.plural
        self.authorizer.check(h.user, verb, kind.group, resource, namespace or "", name or "")
        if sub in STREAMING and verb != "create" and self.version.upgrade_needs_create():
            # The verb is the method's (a WebSocket upgrade is a GET: `get`); from 1.35 the
            # streaming handlers demand `create` as well (version.py cites the source).
            self.authorizer.check(h.user, "create", kind.group, resource, namespace or "", name or "")
        store_ns = namespace if kind.namespaced else ""
        if sub and sub not in kind.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub in ("log", "exec", "attach", "portforward"):
            pod = self._get(kind, store_ns, name)
            if self.hooks is None:
                raise ApiError(503, "ServiceUnavailable", "no pod runtime")
            return self.hooks.on_pod_subresource(h, verb, pod, sub, query)
        if sub == "token" and verb == "create":
            uid = service_account_uid(self.store, store_ns, name)
            if uid is None:
                raise not_found(kind, name)
            body = (self._token_request_body(h) if "protobuf" in h.headers.get("Content-Type", "")
                    else h.read_object())
            return h.send_json(*self.tokens.request(store_ns, name, uid, body))
        if kind.plural == "tokenreviews":
            if verb != "create":
                raise ApiError(405, "MethodNotAllowed",
                               f"the server does not allow this method on the requested "
                               f"resource")
            return h.send_json(*self.tokens.review(h.read_object()))
        if verb == "watch":
            return self._watch(h, kind, version, namespace, query)
        if verb == "list":
            return self._list(h, kind, version, namespace, query)
        if verb == "get":
            obj = self._get(kind, store_ns, name)
            if sub == "scale":
                obj = self._scale_of(obj)
            return self._send_objects(h, kind, version, [obj], single=True, query=query)
        if verb == "create":
            obj = h.read_object()
            return h.send_json(201, self._out(self.create(kind, store_ns, obj, query), version))
        if verb in ("update", "patch"):
            return h.send_json(200, self._out(self._modify(h, verb, kind, store_ns, name, sub, query), version))
        if verb == "delete":
            options = _delete_options(h.read_body(), query)
            obj = self.delete(kind, store_ns, name, options.get("gracePeriodSeconds"))
            return h.send_json(200, self._out(obj, version))
        if verb == "deletecollection":
            h.read_body()
            items, _ = self.store.list(kind.key, namespace)
            match = selectors.label_selector(_one(query, "labelSelector"))
            for o in items:
                if match(o):
                    self.delete(kind, o["metadata"].get("namespace", ""), o["metadata"]["name"])
            return h.send_json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    @staticmethod
    def _token_request_body(h) -> dict:
        """`kubectl create token` sends its TokenRequest as protobuf (the one body here
        decoded from it)."""
        from .tokens import token_request_from_protobuf
        try:
            return token_request_from_protobuf(h.read_body())
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, "BadRequest", f"cannot decode the TokenRequest: {e}") from None

    def _get(self, kind, namespace, name) -> dict:
        try:
            return self.store.get(kind.key, namespace, name)
        except NotFound:
            raise not_found(kind, name) from None

    @staticmethod
    def _out(obj: dict, version: str) -> dict:
        if "/" in obj.get("apiVersion", "") or obj.get("apiVersion"):
            group = obj["apiVersion"].rpartition("/")[0]
            obj["apiVersion"] = f"{group}/{version}" if group else version
        return obj

    def _filtered(self, kind, namespace, query) -> tuple[list[dict], int]:
        try:
            labels = selectors.label_selector(_one(query, "labelSelector"))
            fields = selectors.field_selector(_one(query, "fieldSelector"), kind.key)
        except selectors.SelectorError as e:
            raise ApiError(400, "BadRequest", str(e)) from None
        items, rv = self.store.list(kind.key, namespace)
        return [o for o in items if labels(o) and fields(o)], rv

    def _list(self, h, kind, version, namespace, query) -> None:
        items, rv = self._filtered(kind, namespace, query)
        self._send_objects(h, kind, version, items, single=False, query=query, rv=rv)

    def _send_objects(self, h, kind, version, items, *, single, query, rv=None) -> None:
        items = [self._out(o, version) for o in items]
        if "as=Table" in h.headers.get("Accept", ""):
            include = _one(query, "includeObject", "Metadata")
            return h.send_json(200, tables.table(kind.key, items, str(rv or self.store.resource_version), include))
        if single:
            return h.send_json(200, items[0])
        h.send_json(200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version(version),
                          "metadata": {"resourceVersion": str(rv)}, "items": items})

    def _watch(self, h, kind, version, namespace, query) -> None:
        try:
            labels = selectors.label_selector(_one(query, "labelSelector"))
            fields = selectors.field_selector(_one(query, "fieldSelector"), kind.key)
        except selectors.SelectorError as e:
            raise ApiError(400, "BadRequest", str(e)) from None
        timeout = float(_one(query, "timeoutSeconds", "1800"))
        rv_param = _one(query, "resourceVersion", "")
        as_table = "as=Table" in h.headers.get("Accept", "")
        h.start_chunked("application/json")
        if rv_param in ("", "0") or _bool(query, "sendInitialEvents"):
            items, rv = self._filtered(kind, namespace, query)
            for o in items:  # the current state as ADDED events
                self._emit(h, kind, version, "ADDED", o, as_table, query)
            if _bool(query, "sendInitialEvents") and _bool(query, "allowWatchBookmarks"):
                h.write_chunk(json.dumps({"type": "BOOKMARK", "object": {
                    "kind": kind.kind, "apiVersion": kind.api_version(version),
                    "metadata": {"resourceVersion": str(rv),
                                 "annotations": {"k8s.io/initial-events-end": "true"}}}}).encode() + b"\n")
        else:
            rv = int(rv_param)
        try:
            for ev in self.store.events_since(rv, kind.key, namespace, timeout):
                seen = filtered_event(ev, lambda o: labels(o) and fields(o))
                if seen is not None:
                    self._emit(h, kind, version, *seen, as_table, query)
        except Gone:
            h.write_chunk(json.dumps({"type": "ERROR", "object": status_body(
                410, "Expired", f"too old resource version: {rv}")}).encode() + b"\n")
        h.end_chunked()

    def _emit(self, h, kind, version, etype, obj, as_table, query) -> None:
        obj = self._out(obj, version)
        if as_table:
            obj = tables.table(kind.key, [obj], obj["metadata"].get("resourceVersion", ""),
                               _one(query, "includeObject", "Metadata"))
        h.write_chunk(json.dumps({"type": etype, "object": obj}).encode() + b"\n")

    # -- writes (also used by the scenario loader and controllers)
    def create(self, kind: kinds.Kind, namespace: str, obj: dict, query: dict | None = None) -> dict:
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            raise ApiError(400, "BadRequest", "object has no metadata")
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            import secrets
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if not meta.get("name"):
            raise ApiError(422, "Invalid", f"{kind.kind} is invalid: metadata.name: Required value")
        if kind.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                               "match the namespace sent on the request")
            meta["namespace"] = namespace or meta.get("namespace") or "default"
            if self.store.find("namespaces", "", meta["namespace"]) is None:
                raise ApiError(404, "NotFound", f'namespaces "{meta["namespace"]}" not found',
                               {"name": meta["namespace"], "kind": "namespaces"})
        else:
            meta.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = kind.api_version(), kind.kind
        for admit in self.admission:
            admit(kind, obj, None)
        if query and _one(query, "dryRun"):
            return obj
        try:
            return self.store.create(kind.key, obj)
        except Conflict:
            group = f".{kind.group}" if kind.group else ""
            raise ApiError(409, "AlreadyExists", f'{kind.plural}{group} "{meta["name"]}" already exists',
                           {"name": meta["name"], "group": kind.group, "kind": kind.plural}) from None

    def _modify(self, h, verb, kind, namespace, name, sub, query) -> dict:
        body = h.read_object() if verb == "update" else None
        raw = h.read_body() if verb == "patch" else b""
        ctype = h.headers.get("Content-Type", "")
        old = self.store.find(kind.key, namespace, name)
        if old is None:
            if verb == "patch" and "apply-patch" in ctype:
                return self.create(kind, namespace, yaml.safe_load(raw), query)
            raise not_found(kind, name)
        if sub == "scale":
            new = self._apply_patch(self._scale_of(old), raw, ctype) if verb == "patch" else body
            replicas = int((new.get("spec") or {}).get("replicas", 0))
            old.setdefault("spec", {})["replicas"] = replicas
            self.replace(kind, old, query)
            return self._scale_of(self.store.get(kind.key, namespace, name))
        new = body if verb == "update" else self._apply_patch(old, raw, ctype)
        if sub == "status":
            old["status"] = new.get("status", old.get("status"))
            new = old
        elif sub == "ephemeralcontainers":
            eph = (new.get("spec") or {}).get("ephemeralContainers") or []
            old.setdefault("spec", {})["ephemeralContainers"] = eph
            new = old
        elif verb == "update":
            rv = (new.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"].get("resourceVersion"):
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.plural} '
                               f'"{name}": the object has been modified; please apply your '
                               'changes to the latest version and try again')
            new.setdefault("status", old.get("status"))
        new.setdefault("metadata", {})
        new["metadata"]["name"], new["metadata"]["namespace"] = name, namespace
        if not kind.namespaced:
            new["metadata"].pop("namespace", None)
        return self.replace(kind, new, query)

    def _apply_patch(self, old: dict, raw: bytes, ctype: str) -> dict:
        try:
            if "json-patch" in ctype:
                return patch.json_patch(old, json.loads(raw))
            if "apply-patch" in ctype:
                return patch.merge_patch(old, yaml.safe_load(raw))
            body = json.loads(raw)
            if "strategic-merge-patch" in ctype:
                if kinds.by_kind(old.get("apiVersion", ""), old.get("kind", "")).custom:
                    raise ApiError(415, "UnsupportedMediaType", "strategic merge patch is not "
                                   "supported for custom resources; use --type merge or json")
                return patch.strategic_merge_patch(old, body)
            return patch.merge_patch(old, body)
        except (patch.PatchError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ApiError(422, "Invalid", f"the patch could not be applied: {e}") from None

    def replace(self, kind: kinds.Kind, obj: dict, query: dict | None = None) -> dict:
        old = self.store.find(kind.key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        obj["apiVersion"], obj["kind"] = kind.api_version(), kind.kind
        for admit in self.admission:
            admit(kind, obj, old)
        if query and _one(query, "dryRun"):
            return obj
        return self.store.replace(kind.key, obj)

    def delete(self, kind: kinds.Kind, namespace: str, name: str,
               grace_period: int | None = None) -> dict:
        """Delete an object; a pod on a node is deleted gracefully (below)."""
        if kind.key == "pods":
            terminating = self._delete_gracefully(namespace, name, grace_period)
            if terminating is not None:
                return terminating
        try:
            obj = self.store.delete(kind.key, namespace, name)
        except NotFound:
            raise not_found(kind, name) from None
        if kind.plural == "namespaces":
            for k in kinds.KINDS:
                if k.namespaced:
                    for o in self.store.list(k.key, name)[0]:
                        try:
                            self.store.delete(k.key, name, o["metadata"]["name"])
                        except NotFound:
                            pass
        return obj

    def _delete_gracefully(self, namespace: str, name: str, grace_period: int | None) -> dict | None:
        """A pod bound to a node and not terminal is not removed: it gets a deletionTimestamp
        `grace` seconds ahead and deletionGracePeriodSeconds, and stays (Terminating) until
        its kubelet has stopped its containers and deletes it with grace 0 (the runtime's
        `on_pod_stopped`). The grace is the request's gracePeriodSeconds, else the pod's
        terminationGracePeriodSeconds; 0 for a pod not scheduled or already terminal
        (pkg/registry/core/pod/strategy.go `CheckGracefulDelete`, the timestamp as
        pkg/registry/rest/delete.go `BeforeDelete` sets it). None: delete it now."""
        obj = self.store.find("pods", namespace, name)
        if obj is None:
            return None
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        grace = grace_period if grace_period is not None else \
            spec.get("terminationGracePeriodSeconds", 30)
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            grace = 0
        if grace <= 0:
            return None
        if obj["metadata"].get("deletionTimestamp"):
            return obj  # already terminating (a shorter grace is not modelled)

        def mark(o: dict) -> None:
            at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=grace)
            o["metadata"]["deletionTimestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            o["metadata"]["deletionGracePeriodSeconds"] = grace
        try:
            return self.store.update("pods", namespace, name, mark, bump_generation=False)
        except NotFound:
            return None

    @staticmethod
    def _scale_of(obj: dict) -> dict:
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": obj["metadata"]["name"],
                             "namespace": obj["metadata"].get("namespace"),
                             "resourceVersion": obj["metadata"].get("resourceVersion")},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)}}


class ApiServer:
    """Serves an `Api` over HTTPS on 127.0.0.1 in a background thread."""

    def __init__(self, api: Api, cert: str, key: str, host: str = "127.0.0.1", port: int = 0):
        tls = server_context(cert, key)
        tls.set_alpn_protocols(["http/1.1"])
        self.httpd = _HTTPServer((host, port), Handler, name="apiserver", tls=tls)
        self.httpd.api = api

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"https://{host}:{port}"

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> "ApiServer":
        self.httpd.start()
        return self

    def stop(self) -> None:
        self.httpd.api.store.close()
        self.httpd.stop()


def _delete_options(body: bytes, query: dict) -> dict:
    """The DeleteOptions of a DELETE: its JSON body, `gracePeriodSeconds` also as a query
    parameter (as the real server reads either)."""
    try:
        options = json.loads(body or b"{}")
    except ValueError:
        options = {}
    if not isinstance(options, dict):
        options = {}
    if _one(query, "gracePeriodSeconds"):
        try:
            options["gracePeriodSeconds"] = int(_one(query, "gracePeriodSeconds"))
        except ValueError:
            pass
    return options
