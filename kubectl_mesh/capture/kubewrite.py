"""The few API writes sniff needs (PATCH ephemeralcontainers, create/delete a debug pod).

`KubeApi` is a read-only client; this reuses its authenticated session rather than building a
second TLS setup. Errors are translated with the same `status_error` as reads.
"""

from __future__ import annotations

import json

import requests

from kubectl_mesh.errors import ForbiddenError, UnreachableError
from kubectl_mesh.kube.api import KubeApi, status_error


def request(api: KubeApi, method: str, path: str, body: dict | None = None,
            content_type: str = "application/json", ok=(200, 201, 202)) -> dict | None:
    """`method path` with a JSON body; the decoded answer, None on 404 for DELETE."""
    try:
        resp = api._session.request(  # noqa: SLF001 - see the module docstring
            method, api.config.server + path, timeout=api.timeout, verify=True,
            data=json.dumps(body) if body is not None else None,
            headers={"Content-Type": content_type})
    except requests.exceptions.RequestException as e:
        raise UnreachableError(f"cannot reach the API server {api.config.where} for "
                               f"{method} {path}: {e}") from e
    if method == "DELETE" and resp.status_code == 404:
        return None
    if resp.status_code == 403 and b"PodSecurity" in resp.content:
        # Admission, not RBAC: the namespace's Pod Security level rejects the spec.
        message = json.loads(resp.content).get("message", "forbidden by Pod Security")
        raise ForbiddenError(message, hint="the namespace's pod-security.kubernetes.io/enforce "
                                           "level forbids it; ask an admin, or try another --mode")
    if resp.status_code not in ok:
        raise status_error(resp.status_code, resp.content, method, path, api.config)
    try:
        return resp.json()
    except ValueError:
        return None


def pod_path(namespace: str, name: str = "", sub: str = "") -> str:
    path = f"/api/v1/namespaces/{namespace}/pods"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")
