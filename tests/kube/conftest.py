"""A sandbox per test module (started with `python -m sandbox up --detach`, stopped after)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kube_sandbox import REPO, Sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, backend):
    """On the backend `--backend` chooses (tests/conftest.py), like the shared fixture."""
    state = tmp_path_factory.mktemp("sandbox")
    cache = tmp_path_factory.mktemp("kubecache")
    env = {**os.environ, "KUBECACHEDIR": str(cache)}
    # backend "istio": the real control plane with real Istio
    flags = ["--backend", "real", "--istio", "real"] if backend == "istio" else ["--backend", backend]
    up = subprocess.run([sys.executable, "-m", "sandbox", "up", "--detach", "--state", str(state),
                         *flags], cwd=REPO, capture_output=True, text=True,
                        env=env, timeout=120 + {"double": 0, "real": 150, "istio": 270}[backend])
    try:
        assert up.returncode == 0, up.stderr
        yield Sandbox(state=state, kubeconfig=state / "kubeconfig", cache=cache)
    finally:
        subprocess.run([sys.executable, "-m", "sandbox", "down", "--state", str(state)],
                       cwd=REPO, capture_output=True, env=env, timeout=60)
