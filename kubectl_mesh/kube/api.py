"""A lean Kubernetes API client: plain `requests` with the kubeconfig's credentials.

Building the `kubernetes` client's typed API costs ~0.6 s of start-up (performance notes);
the commands only need a few GETs of raw JSON. HTTP and transport errors are translated into
`kubectl_mesh.errors` types here, once.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from kubectl_mesh.errors import (BadInputError, ForbiddenError, MeshError, NotFoundError,
                                 UnreachableError)
from kubectl_mesh.kube.kubeconfig import ApiConfig

# The resources the commands read, and the API group/version each lives in.
RESOURCE_PATHS = {
    "pods": "/api/v1", "services": "/api/v1", "endpoints": "/api/v1", "namespaces": "/api/v1",
    "configmaps": "/api/v1", "secrets": "/api/v1", "nodes": "/api/v1",
    "deployments": "/apis/apps/v1", "replicasets": "/apis/apps/v1",
    "statefulsets": "/apis/apps/v1", "daemonsets": "/apis/apps/v1",
}
CLUSTER_SCOPED = {"namespaces", "nodes"}

# `pods "x" is forbidden: User "u" cannot create resource "pods/portforward" in API group ""
# in the namespace "ns"` - the apiserver's wording since 1.11.
_FORBIDDEN = re.compile(r'cannot (?P<verb>\S+) resource "(?P<resource>[^"]+)" in API group '
                        r'"(?P<group>[^"]*)"(?: in the namespace "(?P<ns>[^"]*)")?')
_USER = re.compile(r'User "([^"]*)"')
_METHOD_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}


class _TLSAdapter(HTTPAdapter):
    """Carries the kubeconfig's TLS context (CA data, client cert data) into urllib3."""

    def __init__(self, config: ApiConfig):
        self._ssl_context = config.ssl_context()
        self._server_hostname = config.tls_server_name
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._ssl_context
        if self._server_hostname:
            kwargs["server_hostname"] = self._server_hostname
        return super().init_poolmanager(*args, **kwargs)


class KubeApi:
    """GETs of raw JSON against one API server. Use as a context manager, or call close()."""

    def __init__(self, config: ApiConfig, timeout: float | None = 10.0):
        self.config = config
        self.timeout = timeout
        self._session = requests.Session()
        # Proxies: the cluster's proxy-url, else the environment - except for loopback
        # servers, which Go's ProxyFromEnvironment never proxies either.
        self._session.trust_env = False
        self._session.proxies = proxies_for(config)
        self._session.mount("https://", _TLSAdapter(config))
        self._session.headers.update({"Accept": "application/json",
                                      "User-Agent": "kubectl-mesh", **config.auth_headers()})

    def close(self) -> None:
        self._session.close()

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
        url = self.config.server + path
        try:
            resp = self._session.request(method, url, params=params, json=json,
                                         headers=dict(headers or {}), timeout=self.timeout,
                                         verify=True)
        except requests.exceptions.SSLError as e:
            raise UnreachableError(f"TLS handshake with the API server {self.config.where} "
                                   f"failed: {_reason(e)}",
                                   hint="check the cluster's certificate-authority in the "
                                        "kubeconfig") from e
        except requests.exceptions.Timeout as e:
            raise UnreachableError(f"the API server {self.config.where} did not answer within "
                                   f"{self.timeout}s", hint="retry, or raise --request-timeout") from e
        except requests.exceptions.RequestException as e:
            raise UnreachableError(f"cannot reach the API server {self.config.where}: "
                                   f"{_reason(e)}", hint="is the cluster running? check "
                                                         "--context / --kubeconfig") from e
        if resp.status_code == 404 and allow_missing:
            return None
        if not 200 <= resp.status_code < 300:
            error = status_error(resp.status_code, resp.content, method, path, self.config)
            error.status = _parse_status(resp.content)
            raise error
        if not resp.content and method != "GET":
            return None
        try:
            return resp.json()
        except ValueError as e:
            raise BadInputError(f"the API server {self.config.where} answered {method} {path} "
                                f"with something that is not JSON") from e

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
    """`/apis/apps/v1/namespaces/NS/deployments/NAME` and friends."""
    try:
        prefix = RESOURCE_PATHS[resource]
    except KeyError:
        raise ValueError(f"unknown resource {resource!r}") from None
    path = prefix
    if namespace and resource not in CLUSTER_SCOPED:
        path += f"/namespaces/{namespace}"
    path += f"/{resource}"
    return f"{path}/{name}" if name else path


def proxies_for(config: ApiConfig) -> dict[str, str]:
    """The proxies requests should use for this API server."""
    if config.proxy_url:
        return {"https": config.proxy_url, "http": config.proxy_url}
    host = urlsplit(config.server).hostname or ""
    try:
        if host == "localhost" or ipaddress.ip_address(host).is_loopback:
            return {}
    except ValueError:
        pass
    return requests.utils.get_environ_proxies(config.server)


def status_error(code: int, body: bytes | str, method: str, path: str,
                 config: ApiConfig) -> MeshError:
    """The MeshError for a non-2xx answer with (maybe) a Kubernetes Status body."""
    status = _parse_status(body)
    message = status.get("message") or f"HTTP {code}"
    if code == 401:
        return ForbiddenError(f"the server {config.where} rejected our credentials (401)",
                              hint=f"check the kubeconfig's user {config.user!r} / token")
    if code == 403:
        verb, resource, ns = _forbidden_parts(message, method, path)
        where = f" in namespace {ns}" if ns else " at the cluster scope"
        user = _USER.search(message)
        return ForbiddenError(f"cannot {verb} {resource}{where}: ask for RBAC verb {verb} on "
                              f"{resource}", hint=f'as user "{user[1]}"' if user else None)
    if code == 404:
        return NotFoundError(message if status else f"{path} not found on {config.where}")
    if code in (429,) or code >= 500:
        return UnreachableError(f"the API server {config.where} failed {method} {path}: "
                                f"{code} {message}", hint="retry in a moment")
    return MeshError(f"the API server {config.where} refused {method} {path}: {code} {message}")


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


def _reason(exc: Exception) -> str:
    """The innermost, most telling reason of a requests/urllib3 exception."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host",
                   "timed out", "CERTIFICATE_VERIFY_FAILED", "Connection reset"):
        if marker in text:
            return marker.lower() if marker != "CERTIFICATE_VERIFY_FAILED" else \
                "certificate verify failed"
    return text
