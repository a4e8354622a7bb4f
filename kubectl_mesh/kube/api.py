"""A lean Kubernetes API client: HTTP/1.1 (`http1`) with the kubeconfig's TLS context and
credentials (`requests` only when a proxy is involved: it costs ~70 ms of start-up).

Building the `kubernetes` client's typed API costs ~0.6 s of start-up (performance notes);
the commands only need a few GETs of raw JSON. One request path (`KubeApi._call`, like kr8s
`_api.py` `call_api(..., stream=...)`) for plain requests and streams (a followed log, a
watch): the proxy policy, TLS, the retry of a stale keep-alive connection, the exec plugin's
renewal on a 401, and the translation of HTTP and transport errors into
`kubectl_mesh.errors` types, once.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import ssl
import threading
from typing import Any, Callable, Iterator, Mapping, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from kubectl_mesh import http1
from kubectl_mesh.errors import (
    BadInputError,
    ForbiddenError,
    MeshError,
    NotFoundError,
    ToolMissingError,
    UnreachableError,
)
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.kubeconfigcheck import redact

T = TypeVar("T")

# The resources the commands read, and the API group/version each lives in.
RESOURCE_PATHS = {
    "pods": "/api/v1", "services": "/api/v1", "endpoints": "/api/v1", "namespaces": "/api/v1",
    "configmaps": "/api/v1", "secrets": "/api/v1", "nodes": "/api/v1",
    "deployments": "/apis/apps/v1", "replicasets": "/apis/apps/v1",
    "statefulsets": "/apis/apps/v1", "daemonsets": "/apis/apps/v1",
    "serviceaccounts": "/api/v1",
    "mutatingwebhookconfigurations": "/apis/admissionregistration.k8s.io/v1",
}
CLUSTER_SCOPED = {"namespaces", "nodes", "mutatingwebhookconfigurations"}

# `pods "x" is forbidden: User "u" cannot create resource "pods/portforward" in API group ""
# in the namespace "ns"` - the apiserver's wording since 1.11.
_FORBIDDEN = re.compile(r'cannot (?P<verb>\S+) resource "(?P<resource>[^"]+)" in API group '
                        r'"(?P<group>[^"]*)"(?: in the namespace "(?P<ns>[^"]*)")?')
_USER = re.compile(r'User "([^"]*)"')
_FORBIDDEN_NAME = re.compile(r'\S+ "([^"]*)" is forbidden: ')
_METHOD_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}


def tls_adapter(config: ApiConfig):
    """A requests adapter carrying the kubeconfig's TLS context (CA data, client cert data)
    and its credential/impersonation headers (repeated ones too, which a requests header
    dict cannot hold). Its pool keeps up to STREAMS_KEPT connections: each followed log or
    watch holds one, and a smaller pool would discard (and warn about) the rest."""
    from requests.adapters import HTTPAdapter
    from urllib3 import HTTPHeaderDict

    class _TLSAdapter(HTTPAdapter):
        def add_headers(self, request, **kwargs):
            headers = HTTPHeaderDict(request.headers)
            for name, value in config.auth_headers():
                headers.add(name, value)
            request.headers = headers

        def __init__(self):
            self._ssl_context = config.ssl_context()
            self._server_hostname = config.tls_server_name
            super().__init__(pool_maxsize=STREAMS_KEPT)

        def init_poolmanager(self, *args, **kwargs):
            kwargs["ssl_context"] = self._ssl_context
            if self._server_hostname:
                kwargs["server_hostname"] = self._server_hostname
            return super().init_poolmanager(*args, **kwargs)

        def proxy_manager_for(self, proxy, **proxy_kwargs):
            # Through a proxy, requests builds another pool manager: the same TLS settings
            # (else the tunnelled handshake would check the server against the system CAs).
            proxy_kwargs["ssl_context"] = self._ssl_context
            if self._server_hostname:
                proxy_kwargs["server_hostname"] = self._server_hostname
            return super().proxy_manager_for(proxy, **proxy_kwargs)

    return _TLSAdapter()


class _ApiConnection(http1.Connection):
    """One keep-alive connection to the API server; TLS with the kubeconfig's context and
    `tls-server-name` (what the certificate is checked against) when set."""

    def __init__(self, host: str, port: int, timeout: float | None,
                 context: ssl.SSLContext | None, server_name: str | None):
        super().__init__(host, port, timeout=timeout)
        self._context, self._server_name = context, server_name or host

    def connect(self) -> None:
        super().connect()  # sets TCP_NODELAY too
        if self._context is not None:
            self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name)


STREAMS_KEPT = 256


class ApiStream:
    """A streamed answer (a followed log, a watch) on a connection of its own: its pieces as
    they arrive, or its lines. `close()` may be called from another thread; the reading then
    ends quietly. A connection that breaks is an UnreachableError naming `what`."""

    def __init__(self, pieces: Iterator[bytes], sock: socket.socket | None,
                 release: Callable[[], None], what: str):
        self._pieces, self._sock, self._release, self.what = pieces, sock, release, what
        self._closed = False

    def chunks(self) -> Iterator[bytes]:
        try:
            for piece in self._pieces:
                if piece:
                    yield piece
        except (OSError, http1.HTTPException, ValueError, AttributeError) as e:
            if not self._closed:  # close() from another thread ends the read this way
                raise UnreachableError(f"{self.what} broke: {_reason(e)}") from e

    def lines(self, max_line: int | None = None) -> Iterator[bytes]:
        """The lines, newline stripped (split on `\\n` only, not on a bare `\\r`); a line
        longer than `max_line` bytes comes in pieces. Memory: one chunk plus one line."""
        pending = b""
        for chunk in self.chunks():
            pending += chunk
            if b"\n" not in chunk:
                if max_line is not None and len(pending) > max_line:
                    yield pending
                    pending = b""
                continue
            *complete, pending = pending.split(b"\n")
            yield from complete
        if pending and not self._closed:
            yield pending

    def close(self) -> None:
        """End the stream; safe to call twice and from any thread."""
        self._closed = True
        if self._sock is not None:  # wakes a reader blocked in recv(); close() alone may not
            try:  # socket.socket's shutdown: SSLSocket's would pull TLS from under the reader
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self._release()
        except Exception:  # noqa: BLE001 - closing a broken stream is best effort
            pass


# A kept-alive connection the server closed meanwhile fails on first use; it is retried once
# on a new one (urllib3 does the same for the same reason).
_STALE = (http1.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
          http1.BadStatusLine)
CHUNK_BYTES = 64 * 1024  # what a stream reads at a time


def _socket_of(resp) -> socket.socket | None:
    """The socket under a streamed requests answer (to wake a reader blocked on it)."""
    conn = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


class KubeApi:
    """GETs of raw JSON against one API server. Use as a context manager, or call close().

    Safe to share between threads: each request takes an idle connection or opens one.
    """

    def __init__(self, config: ApiConfig, timeout: float | None = 10.0):
        self.config = config
        self.timeout = timeout
        self._headers = {"Accept": "application/json", "User-Agent": "kubectl-mesh"}
        # Proxies: the cluster's proxy-url, else the environment - except for loopback
        # servers, which Go's ProxyFromEnvironment never proxies either.
        proxies = proxies_for(config)
        self._session = None
        if proxies:  # requests speaks CONNECT/SOCKS; http.client below does not need to
            import requests

            self._session = requests.Session()
            self._session.trust_env = False
            self._session.proxies = proxies
            self._session.mount("https://", tls_adapter(config))
            self._session.mount("http://", tls_adapter(config))
            self._session.headers.update(self._headers)
        parts = urlsplit(config.server)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._tls: ssl.SSLContext | None = None
        self._idle: list[_ApiConnection] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> KubeApi:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- generic ---------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None, *,
            allow_missing: bool = False) -> dict | None:
        """GET `path` (e.g. `/api/v1/namespaces/x/pods`) as a dict; None on 404 if allowed."""
        return self.request("GET", path, params=params, allow_missing=allow_missing)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, headers: Mapping[str, str] | None = None,
                allow_missing: bool = False) -> dict | None:
        """`method path` with an optional JSON body (`headers` may set e.g. a patch
        Content-Type); the decoded answer (None for an empty one, or on 404 if allowed).

        Errors are translated like `get`'s; the MeshError of a non-2xx answer carries the
        server's Status as `.status` (admission vs RBAC denials differ only there).
        """
        content = self._call(method, path, params, json, headers, allow_missing=allow_missing)
        if content is None or (not content and method != "GET"):
            return None
        try:
            return _json_loads(content)
        except ValueError as e:
            raise BadInputError(f"the API server {self.config.where} answered {method} {path} "
                                f"with something that is not JSON") from e

    def stream(self, path: str, params: Mapping[str, Any] | None = None, *, what: str,
               read_timeout: float | None = None) -> ApiStream:
        """GET `path` as a stream (a followed log, a watch) on a connection of its own,
        closed with the stream. Only the connect and the request are timed by `timeout`; the
        answer's reads by `read_timeout` (None: a follow may be quiet for hours). `what`
        names it in messages ("the watch on pods in namespace x"). Errors like `request`'s."""
        return self._call("GET", path, params, None, None, stream=what,
                          read_timeout=read_timeout)

    def _call(self, method: str, path: str, params: Mapping[str, Any] | None, body: Any,
              headers: Mapping[str, str] | None, *, stream: str | None = None,
              read_timeout: float | None = None, allow_missing: bool = False):
        """The one request path: the answer's body (bytes), or an ApiStream when `stream`
        says what it is for; None on a 404 if allowed."""
        send = self._via_requests if self._session is not None else self._send
        token = self.config.bearer_token()
        status, answer = send(method, path, params, body, headers, stream, read_timeout)
        # An exec plugin's token the server no longer takes (a 15-minute token in a long
        # command): run the plugin again, once, and retry the request once with its new one.
        if status == 401 and self.config.renew_credentials(token):
            status, answer = send(method, path, params, body, headers, stream, read_timeout)
        if status == 404 and allow_missing:
            return None
        if not 200 <= status < 300:
            error = status_error(status, answer, method, path, self.config)
            error.status = _parse_status(answer)
            raise error
        return answer

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None, body: Any,
              headers: Mapping[str, str] | None, stream: str | None,
              read_timeout: float | None) -> tuple[int, Any]:
        """(status, body or ApiStream) over a kept-alive `http.client` connection; errors
        translated. A stream keeps its connection; an error answer is read whole."""
        target = self._prefix + path + ("?" + urlencode(params, doseq=True) if params else "")
        all_headers = {**self._headers, **(headers or {})}
        payload = None
        if body is not None:
            payload = _json_dumps(body)
            if not any(k.lower() == "content-type" for k in all_headers):
                all_headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            conn, reused = self._take()
            try:
                conn.putrequest(method, target, skip_accept_encoding=True)
                for name, value in [*all_headers.items(), *self.config.auth_headers()]:
                    conn.putheader(name, value)
                if payload is not None or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(payload or b"")))
                conn.endheaders(payload)
                if stream:
                    conn.sock.settimeout(read_timeout)
                resp = conn.getresponse()
                if stream and 200 <= resp.status < 300:
                    def release(resp=resp, conn=conn) -> None:
                        resp.close()
                        conn.close()
                    return resp.status, ApiStream(iter(lambda: resp.read1(CHUNK_BYTES), b""),
                                                  conn.sock, release, stream)
                status, content = resp.status, resp.read()
            except (OSError, http1.HTTPException) as e:  # ssl errors are OSErrors
                conn.close()
                if reused and attempt == 1 and isinstance(e, _STALE):  # no SSLError is one
                    continue
                raise transport_error(e, self.config.where, self.timeout,
                                      doing=f" for {stream}" if stream else "") from e
            if resp.will_close or stream:
                conn.close()
            else:
                with self._lock:
                    self._idle.append(conn)
            return status, content
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of this client's connections, built once: the kubeconfig's CA and
        client key pair loaded once for whatever else talks to the same API server (the
        port-forward WebSockets: `wsdial.TlsReuse`)."""
        with self._lock:
            if self._tls is None:
                self._tls = self.config.ssl_context()
            return self._tls

    def _take(self) -> tuple[_ApiConnection, bool]:
        """An idle connection (reused=True) or a new one."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        tls = self.ssl_context() if self._https else None
        return _ApiConnection(self._host, self._port, self.timeout, tls,
                              self.config.tls_server_name), False

    def _via_requests(self, method: str, path: str, params: Mapping[str, Any] | None,
                      body: Any, headers: Mapping[str, str] | None, stream: str | None,
                      read_timeout: float | None) -> tuple[int, Any]:
        import requests

        url = self.config.server + path
        try:
            resp = self._session.request(method, url, params=params, json=body,
                                         headers=dict(headers or {}), verify=True,
                                         stream=bool(stream),
                                         timeout=(self.timeout, read_timeout) if stream
                                         else self.timeout)
        except requests.exceptions.RequestException as e:
            kind = (TLS_FAILED if isinstance(e, requests.exceptions.SSLError) else
                    TIMED_OUT if isinstance(e, requests.exceptions.Timeout) else None)
            proxy = self._session.proxies.get(urlsplit(url).scheme)
            doing = f" for {stream}" if stream else ""
            if proxy:
                doing += f" through the proxy {redact(proxy)}"
            raise transport_error(e, self.config.where, self.timeout, kind=kind,
                                  doing=doing) from e
        if stream and 200 <= resp.status_code < 300:
            return resp.status_code, ApiStream(resp.iter_content(CHUNK_BYTES),
                                               _socket_of(resp), resp.close, stream)
        return resp.status_code, resp.content

    def get_resource(self, resource: str, namespace: str | None, name: str, *,
                     allow_missing: bool = False) -> dict | None:
        """One object, e.g. `get_resource("deployments", "istioinaction", "catalog")`."""
        return self.get(resource_path(resource, namespace, name), allow_missing=allow_missing)

    def list_resource(self, resource: str, namespace: str | None = None, *,
                      label_selector: str | None = None,
                      field_selector: str | None = None) -> list[dict]:
        """The items of a list (namespace None = all namespaces), following `continue`."""
        params: dict[str, Any] = {"limit": 500}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        items: list[dict] = []
        while True:
            page = self.get(resource_path(resource, namespace), params) or {}
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params["continue"] = token

    # -- conveniences ----------------------------------------------------------------------

    def list_pods(self, namespace: str | None = None, label_selector: str | None = None,
                  field_selector: str | None = None) -> list[dict]:
        return self.list_resource("pods", namespace, label_selector=label_selector,
                                  field_selector=field_selector)

    def get_pod(self, namespace: str, name: str, *, allow_missing: bool = False) -> dict | None:
        return self.get_resource("pods", namespace, name, allow_missing=allow_missing)


def resource_path(resource: str, namespace: str | None, name: str | None = None) -> str:
    """`/apis/apps/v1/namespaces/NS/deployments/NAME` and friends; NS and NAME are quoted
    (a name from anywhere cannot add a query, a fragment or another path segment)."""
    try:
        prefix = RESOURCE_PATHS[resource]
    except KeyError:
        raise ValueError(f"unknown resource {resource!r}") from None
    path = prefix
    if namespace and resource not in CLUSTER_SCOPED:
        path += f"/namespaces/{segment(namespace)}"
    path += f"/{resource}"
    return f"{path}/{segment(name)}" if name else path


def pod_path(namespace: str, name: str, subresource: str) -> str:
    """`/api/v1/namespaces/NS/pods/NAME/SUBRESOURCE` (portforward, exec, log), quoted."""
    return f"{resource_path('pods', namespace, name)}/{subresource}"


def segment(text: str) -> str:
    """One path segment, percent-encoded; `.` and `..` (which a server would resolve) too."""
    if text in (".", ".."):
        return text.replace(".", "%2E")
    return quote(text, safe="")


def proxies_for(config: ApiConfig) -> dict[str, str]:
    """The proxies requests should use for this API server."""
    if config.proxy_url:
        if urlsplit(config.proxy_url).scheme == "socks5":
            _needs_module("socks", "PySocks", config)  # what requests speaks SOCKS with
        return {"https": config.proxy_url, "http": config.proxy_url}
    host = urlsplit(config.server).hostname or ""
    try:
        if host == "localhost" or ipaddress.ip_address(host).is_loopback:
            return {}
    except ValueError:
        pass
    if not any(key.lower().endswith("_proxy") and value for key, value in os.environ.items()):
        return {}  # what requests would answer, without importing it (~70 ms)
    import requests

    return requests.utils.get_environ_proxies(config.server)


class RejectedCredentials(ForbiddenError):
    """A 401: the server took none of our credentials (an exec plugin may have a new one)."""


def with_renewal(config: ApiConfig, attempt: Callable[[], T]) -> T:
    """`attempt()`, and once more when it met a 401 and the user's exec plugin then gives a
    new token (client-go's `maybeRefreshCreds`): for WebSockets opened late in a long
    command, after a short-lived token has expired on the server."""
    token = config.bearer_token()
    try:
        return attempt()
    except RejectedCredentials:
        if not config.renew_credentials(token):
            raise
    return attempt()


def _needs_module(module: str, package: str, config: ApiConfig) -> None:
    """ToolMissingError naming the proxy when the Python `module` that speaks it is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ToolMissingError(f"the proxy-url {redact(config.proxy_url or '')} of cluster "
                               f"{config.cluster!r} needs the Python package {package!r}",
                               hint=f"python3 -m pip install --user {package}, or use an "
                                    "http:// proxy")


def status_error(code: int, body: bytes | str, method: str, path: str,
                 config: ApiConfig) -> MeshError:
    """The MeshError for a non-2xx answer with (maybe) a Kubernetes Status body."""
    status = _parse_status(body)
    message = status.get("message") or f"HTTP {code}"
    if code == 401:
        return RejectedCredentials(f"the server {config.where} rejected our credentials (401)",
                              hint=f"check the kubeconfig's user {config.user!r} / token")
    if code == 403:
        verb, resource, ns = _forbidden_parts(message, method, path)
        where = f" in namespace {ns}" if ns else " at the cluster scope"
        user = _USER.search(message)
        if verb.startswith(("impersonate-on:", "impersonate:")):
            return _impersonation_refused(message, verb, resource, where)
        return ForbiddenError(f"cannot {verb} {resource}{where}: ask for RBAC verb {verb} on "
                              f"{resource}", hint=f'as user "{user[1]}"' if user else None)
    if code == 404:
        return NotFoundError(message if status else f"{path} not found on {config.where}")
    if code in (429,) or code >= 500:
        return UnreachableError(f"the API server {config.where} failed {method} {path}: "
                                f"{code} {message}", hint="retry in a moment")
    return MeshError(f"the API server {config.where} refused {method} {path}: {code} {message}")


def _impersonation_refused(message: str, verb: str, resource: str, where: str) -> ForbiddenError:
    """A 403 of constrained impersonation (Kubernetes 1.36+, k8s.io/apiserver
    pkg/endpoints/filters/impersonation): the caller lacks `impersonate-on:<mode>:<verb>` on
    what the request asks, or `impersonate:<mode>` on the user; and the legacy `impersonate`
    was refused too (the server names the first refusal only)."""
    if verb.startswith("impersonate-on:"):
        mode, _, on_verb = verb.removeprefix("impersonate-on:").partition(":")
        doing = f"impersonate to {on_verb} {resource}{where}"
    else:
        mode = verb.removeprefix("impersonate:")
        named = _FORBIDDEN_NAME.match(message)
        doing = f"impersonate {resource.split('.')[0]}" + (f' "{named[1]}"' if named else "")
    target = "users" if mode == "user-info" else "nodes" if "node" in mode else "serviceaccounts"
    caller = _USER.search(message)
    return ForbiddenError(
        f"may not {doing}: ask for RBAC verb impersonate on users (and groups, uids), or for "
        f"constrained impersonation impersonate-on:{mode}:<verb> on the resources and "
        f"impersonate:{mode} on {target} in API group authentication.k8s.io",
        hint=f'user "{caller[1]}" impersonating with --as' if caller else None)


def _forbidden_parts(message: str, method: str, path: str) -> tuple[str, str, str]:
    match = _FORBIDDEN.search(message)
    if match:
        resource = match["resource"]
        if match["group"]:
            resource = f"{resource.split('/')[0]}.{match['group']}" + (
                "/" + resource.split("/", 1)[1] if "/" in resource else "")
        return match["verb"], resource, match["ns"] or ""
    # No recognisable message: derive it from the request.
    parts = path.split("?")[0].strip("/").split("/")
    ns = parts[parts.index("namespaces") + 1] if "namespaces" in parts[:-1] else ""
    tail = parts[parts.index("namespaces") + 2:] if ns else parts[2:]
    resource = "/".join([tail[0]] + tail[2:3]) if tail else path
    verb = _METHOD_VERBS.get(method, method.lower())
    if verb == "get" and len(tail) == 1:
        verb = "list"
    return verb, resource, ns


def _parse_status(body: bytes | str) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) and data.get("kind") == "Status" else {}


TLS_FAILED, TIMED_OUT, UNREACHABLE = "tls", "timeout", "unreachable"


def transport_error(exc: BaseException, where: str, timeout: float | None, *, doing: str = "",
                    kind: str | None = None) -> UnreachableError:
    """The one wording for a conversation with the API server that failed below HTTP: a TLS
    failure, a timeout, or no connection. `doing` says what for (e.g. " for a port-forward
    to pod x.ns"); `kind` overrides the classification (for requests' exception types)."""
    if kind is None:
        kind = (TLS_FAILED if isinstance(exc, (ssl.SSLError, ssl.CertificateError)) else
                TIMED_OUT if isinstance(exc, TimeoutError) else UNREACHABLE)
    if kind == TLS_FAILED:
        return UnreachableError(f"TLS handshake with the API server {where}{doing} failed: "
                                f"{_reason(exc)}",
                                hint="check the cluster's certificate-authority in the "
                                     "kubeconfig")
    if kind == TIMED_OUT:
        return UnreachableError(f"the API server {where} did not answer{doing} within "
                                f"{timeout}s", hint="retry, or raise --request-timeout")
    return UnreachableError(f"cannot reach the API server {where}{doing}: {_reason(exc)}",
                            hint="is the cluster running? check --context / --kubeconfig")


def _reason(exc: BaseException) -> str:
    """The innermost, most telling reason of an OSError or a requests/urllib3 exception."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host",
                   "timed out", "CERTIFICATE_VERIFY_FAILED", "Connection reset"):
        if marker in text:
            return marker.lower() if marker != "CERTIFICATE_VERIFY_FAILED" else \
                "certificate verify failed"
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, ssl.SSLError):
        return exc.strerror
    return text


def _json_loads(content: bytes) -> Any:
    return json.loads(content)


def _json_dumps(body: Any) -> bytes:
    return json.dumps(body).encode()
