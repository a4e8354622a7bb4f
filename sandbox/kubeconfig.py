"""Writing kubeconfig files for the sandbox's users."""

from __future__ import annotations

import base64
import pathlib

import yaml

from .credentials import write_private


def render(server: str, ca_pem: bytes, token: str, *, user: str = "sandbox-admin",
           context: str = "sandbox", cluster: str = "sandbox", namespace: str = "default") -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster, "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user,
                                                    "namespace": namespace}}],
        "current-context": context,
    }, sort_keys=False)


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    """Write a kubeconfig (it holds a token): mode 0600 from its creation."""
    return write_private(path, text)
