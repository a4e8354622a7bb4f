"""The few API writes sniff needs (PATCH ephemeralcontainers, create/delete a debug pod),
with Pod Security admission denials told apart from RBAC ones."""

from __future__ import annotations

import re

from kubectl_mesh.errors import ForbiddenError
from kubectl_mesh.kube.api import KubeApi

# `pods "x" is forbidden: violates PodSecurity "baseline:latest": privileged (...)`
_POD_SECURITY = re.compile(r'violates PodSecurity "(?P<level>[a-z]+)(?::[^"]*)?"')


class PodSecurityRejected(ForbiddenError):
    """Pod Security admission (not RBAC) refused the pod spec; `level` is the enforced one."""

    def __init__(self, message: str, level: str, hint: str | None = None):
        super().__init__(message, hint)
        self.level = level


def request(api: KubeApi, method: str, path: str, body: dict | None = None,
            content_type: str = "application/json") -> dict | None:
    """`method path` with a JSON body; the decoded answer, None on 404 for DELETE."""
    try:
        return api.request(method, path, json=body, headers={"Content-Type": content_type},
                           allow_missing=method == "DELETE")
    except ForbiddenError as e:
        message = (getattr(e, "status", None) or {}).get("message") or ""
        found = _POD_SECURITY.search(message)
        if found:
            raise PodSecurityRejected(message, found["level"]) from e
        raise


def pod_path(namespace: str, name: str = "", sub: str = "") -> str:
    path = f"/api/v1/namespaces/{namespace}/pods"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")
