"""Files holding the sandbox's credentials are private from the moment they exist."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

from sandbox import kubeconfig
from sandbox.apiserver import auth, pki
from sandbox.testing import add_user

SECRETS = ("rbac.json", "kubeconfig", "kubeconfig-viewer", "pki/server.key")


def _modes(root: pathlib.Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
            for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def open_umask():
    """umask 0: a file created without an explicit mode would be world-readable (0666)."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_credentials_are_never_world_readable_not_even_while_written(tmp_path, open_umask,
                                                                      monkeypatch):
    """Every file under the state directory is inspected whenever a file is chmod-ed or
    renamed into place: a credential written first and restricted afterwards is caught."""
    seen: list[tuple[str, int]] = []
    real_chmod, real_replace = os.chmod, os.replace

    def inspect(*_):
        seen.extend(_modes(tmp_path).items())

    monkeypatch.setattr(os, "chmod", lambda *a, **k: (inspect(), real_chmod(*a, **k))[1])
    monkeypatch.setattr(os, "replace", lambda *a, **k: (inspect(), real_replace(*a, **k))[1])
    ca, _, _ = pki.write_ca_and_server_cert(tmp_path / "pki")
    auth.write_tokens(tmp_path / "rbac.json", {"admin-token": {"user": "sandbox-admin"}})
    auth.write_tokens(tmp_path / "rbac.json", {"admin-token": {"user": "sandbox-admin"},
                                               "other": {"user": "other"}})
    kubeconfig.write(tmp_path / "kubeconfig",
                     kubeconfig.render("https://127.0.0.1:1", ca.read_bytes(), "admin-token"))
    add_user(tmp_path, tmp_path / "kubeconfig", "viewer", ["get pods"])
    inspect()
    leaked = sorted({(name, oct(mode)) for name, mode in seen
                     if mode & 0o077 and not name.endswith(".crt")})
    assert not leaked
    final = _modes(tmp_path)
    assert {name: oct(final[name]) for name in SECRETS} == {name: "0o600" for name in SECRETS}
    assert sorted(final) == sorted([*SECRETS, "pki/ca.crt", "pki/server.crt"])  # no temp file
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700
