"""Shared pytest options, the golden-file comparison every golden test uses, and the
one-sandbox-per-module fixtures the end-to-end tests share."""

from __future__ import annotations

import difflib
import pathlib

import pytest

from sandbox.testing import MeshCli, RunningSandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """One sandbox (default scenario) per test module; tests restore what they change."""
    with RunningSandbox(tmp_path_factory.mktemp("sb") / "state") as sb:
        yield sb


@pytest.fixture(scope="module")
def mesh(sandbox) -> MeshCli:
    """`mesh("routes", ...)` runs `kubectl mesh routes ...` through real kubectl."""
    return MeshCli(sandbox)


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden files instead of comparing against them")


@pytest.fixture
def golden(request):
    """`golden(path, actual)`: compare with the golden file (unified diff on mismatch), or
    rewrite it with `pytest --update-golden` – never silently."""
    update = request.config.getoption("--update-golden")

    def check(expected_file: pathlib.Path, actual: str) -> None:
        if update:
            expected_file.parent.mkdir(parents=True, exist_ok=True)
            expected_file.write_text(actual)
            return
        assert expected_file.exists(), f"no golden file {expected_file}; run pytest --update-golden"
        expected = expected_file.read_text()
        if actual != expected:
            diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                                "expected", "actual"))
            pytest.fail(f"{expected_file} differs from golden:\n{diff}")

    return check
