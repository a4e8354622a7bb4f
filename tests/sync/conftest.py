"""The sync end-to-end modules' mesh: `kubectl mesh` on the module's sandbox, every proxy
SYNCED before the first test."""

from __future__ import annotations

import pytest

from sandbox.testing import MeshCli


@pytest.fixture(scope="module")
def mesh(sandbox) -> MeshCli:
    m = MeshCli(sandbox)
    out = m("sync", "--wait", "--timeout", "60s")
    assert out.returncode == 0, out.stderr
    return m
