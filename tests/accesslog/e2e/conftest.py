"""Fixtures for `kubectl mesh accesslog` end-to-end tests: one sandbox (default scenario) per
module, `kubectl mesh ...` through REAL kubectl, and traffic through the real gateway Envoy."""

from __future__ import annotations

import http.client
import time



HOST = "catalog.istioinaction.io"
GW = ("deploy/istio-ingressgateway", "-n", "istio-system")


def get(ip: str, port: int = 8080, path: str = "/items", host: str = HOST,
        timeout: float = 5.0) -> tuple[int, float]:
    """One GET straight to a pod address: (status, seconds)."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.monotonic() - started
    finally:
        conn.close()
