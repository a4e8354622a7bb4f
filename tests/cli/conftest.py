"""Fixtures for end-to-end command tests: one sandbox per test module, and `kubectl mesh ...`
run through REAL kubectl with the installed executables on PATH."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from sandbox.testing import RunningSandbox, kubectl_binary

BIN = pathlib.Path(sys.executable).parent


class Mesh:
    def __init__(self, sandbox: RunningSandbox):
        self.sb = sandbox

    def env(self, **extra) -> dict:
        """The sandbox's KUBECONFIG, the venv's executables first on PATH, no inherited
        NO_COLOR; `extra` (e.g. PATH=..., NO_COLOR=1) is applied last and wins."""
        env = self.sb.env()
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env.pop("NO_COLOR", None)
        env.update(extra)
        return env

    def __call__(self, *args: str, env: dict | None = None, timeout: float = 60,
                 input: str | None = None) -> subprocess.CompletedProcess:
        """`kubectl mesh ARGS...` through real kubectl (plugin lookup included)."""
        return subprocess.run([kubectl_binary(), "mesh", *args], capture_output=True, text=True,
                              timeout=timeout, env=env or self.env(), input=input)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with RunningSandbox(tmp_path_factory.mktemp("sb") / "state") as sb:
        yield sb


@pytest.fixture(scope="module")
def mesh(sandbox) -> Mesh:
    return Mesh(sandbox)
