"""Fixtures for `kubectl mesh accesslog` end-to-end tests: one sandbox (default scenario) per
module, `kubectl mesh ...` through REAL kubectl, and traffic through the real gateway Envoy."""

from __future__ import annotations

import http.client
import os
import pathlib
import subprocess
import sys
import time

import pytest

from sandbox.testing import RunningSandbox, kubectl_binary

BIN = pathlib.Path(sys.executable).parent
HOST = "catalog.istioinaction.io"
GW = ("deploy/istio-ingressgateway", "-n", "istio-system")


class Mesh:
    """`mesh("accesslog", ...)` runs `kubectl mesh accesslog ...` against the sandbox."""

    def __init__(self, sandbox: RunningSandbox):
        self.sb = sandbox

    def env(self, **extra) -> dict:
        env = self.sb.env(**extra)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env.pop("NO_COLOR", None)
        return env

    def argv(self, *args: str) -> list[str]:
        return [kubectl_binary(), "mesh", *args]

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                              env=self.env())


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


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with RunningSandbox(tmp_path_factory.mktemp("sb") / "state") as sb:
        yield sb


@pytest.fixture(scope="module")
def mesh(sandbox) -> Mesh:
    return Mesh(sandbox)
