"""Fixtures for the loglevel end-to-end tests: one sandbox per module, `kubectl mesh ...`
through REAL kubectl, and a direct look at every Envoy's `POST /logging` (`sandbox.testing.PodPort`)."""

from __future__ import annotations

from kubectl_mesh.admin import parse_loggers
from sandbox.testing import PodPort, RunningSandbox


def envoy_levels(admin: PodPort) -> dict[str, str]:
    """The levels Envoy itself reports, straight from its admin port (no plugin involved)."""
    return parse_loggers(admin.post("/logging").decode())


def proxies(sandbox: RunningSandbox) -> dict[str, PodPort]:
    """{pod ref: its Envoy's admin port} of every pod with an istio-proxy."""
    return {f"{p['metadata']['name']}.{p['metadata']['namespace']}": PodPort(p, 15000)
            for p in sandbox.pods()
            if any(c["name"] == "istio-proxy"  # a native sidecar is an init container
                   for c in p["spec"]["containers"] + p["spec"].get("initContainers", []))
            and p["status"].get("phase") == "Running"}


def all_levels(sandbox: RunningSandbox) -> dict[str, dict[str, str]]:
    """Every Envoy's levels, by pod ref: what "nothing changed anywhere" is checked against."""
    return {ref: envoy_levels(admin) for ref, admin in proxies(sandbox).items()}
