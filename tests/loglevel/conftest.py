"""Fixtures for the loglevel end-to-end tests: one sandbox per module, `kubectl mesh ...`
through REAL kubectl, and a direct look at every Envoy's `POST /logging`."""

from __future__ import annotations

import requests

from kubectl_mesh.admin import parse_loggers
from sandbox.testing import RunningSandbox


def envoy_levels(ip: str) -> dict[str, str]:
    """The levels Envoy itself reports, straight from its admin port (no plugin involved)."""
    resp = requests.post(f"http://{ip}:15000/logging", timeout=5)
    resp.raise_for_status()
    return parse_loggers(resp.text)


def proxies(sandbox: RunningSandbox) -> dict[str, str]:
    """{pod ref: pod IP} of every pod with an istio-proxy."""
    return {f"{p['metadata']['name']}.{p['metadata']['namespace']}": p["status"]["podIP"]
            for p in sandbox.pods()
            if any(c["name"] == "istio-proxy"  # a native sidecar is an init container
                   for c in p["spec"]["containers"] + p["spec"].get("initContainers", []))
            and p["status"].get("phase") == "Running"}


def all_levels(sandbox: RunningSandbox) -> dict[str, dict[str, str]]:
    """Every Envoy's levels, by pod ref: what "nothing changed anywhere" is checked against."""
    return {ref: envoy_levels(ip) for ref, ip in proxies(sandbox).items()}
