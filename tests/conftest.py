"""Shared pytest options, the golden-file comparison every golden test uses, and the
one-sandbox-per-module fixtures the end-to-end tests share."""

from __future__ import annotations

import difflib
import os
import pathlib
import socket
import sys
import threading
import time

import pytest

from sandbox.testing import MeshCli, RunningSandbox


BACKENDS = ("double", "real", "istio")
GROUPS = {"both": ("double", "real"), "all": BACKENDS}


def _backends(config) -> list[str]:
    chosen = config.getoption("--backend")
    return list(GROUPS.get(chosen, (chosen,)))


def pytest_generate_tests(metafunc):
    """With `--backend both` (or `all`), every test on the `sandbox` fixture (or on a
    sandbox of its own that asks for `backend`) runs on each backend (ids `[double]`,
    `[real]`, `[istio]`); with one backend the ids stay as they are."""
    if "backend" in metafunc.fixturenames and len(_backends(metafunc.config)) > 1:
        metafunc.parametrize("backend", _backends(metafunc.config), indirect=True,
                             scope="module")


def pytest_collection_modifyitems(config, items):
    """Tests on the real backend need the real components: marked `real` (`make test-fast`
    leaves them out). A test marked `double_only(reason)` checks something only the API
    double has: skipped on the real backends, with its reason; one marked
    `sandbox_istiod_only(reason)` something only the sandbox istiod does (its fault
    switches, behaviours real istiod has no equivalent for): skipped on real Istio."""
    for item in items:
        if "backend" not in getattr(item, "fixturenames", ()):
            continue
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec else _backends(config)[0]
        if backend in ("real", "istio"):
            item.add_marker(pytest.mark.real)
            only = item.get_closest_marker("double_only")
            if only is not None:
                item.add_marker(pytest.mark.skip(reason=f"the API double only: {only.args[0]}"))
        if backend == "istio":
            only = item.get_closest_marker("sandbox_istiod_only")
            if only is not None:
                item.add_marker(pytest.mark.skip(
                    reason=f"the sandbox istiod only: {only.args[0]}"))


@pytest.fixture(scope="module")
def backend(request) -> str:
    """The sandbox backend of this module's tests: `--backend double|real|istio|both|all`."""
    return getattr(request, "param", None) or _backends(request.config)[0]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, backend):
    """One sandbox (default scenario) per test module, on the chosen backend; tests restore
    what they change."""
    with RunningSandbox(tmp_path_factory.mktemp("sb") / "state", backend=backend) as sb:
        yield sb


@pytest.fixture(scope="module")
def mesh(sandbox) -> MeshCli:
    """`mesh("routes", ...)` runs `kubectl mesh routes ...` through real kubectl."""
    return MeshCli(sandbox)


def _accepting_threads(exclude: set[int]) -> list[str]:
    """Threads (but those in `exclude`) blocked in `socket.accept` (a test server's loop)."""
    frames = sys._current_frames()
    found = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident)
        if thread.ident in exclude or frame is None:
            continue
        while frame is not None:
            if frame.f_code is socket.socket.accept.__code__:
                found.append(thread.name)
                break
            frame = frame.f_back
    return found


@pytest.fixture(scope="module", autouse=True)
def no_listener_left_accepting():
    """A test server's accept loop must end with its module. A listener closed under a thread
    blocked in accept() is not closed: the kernel keeps it listening for that thread, which
    then serves whatever connects to the port later (an echo server answered a later
    module's kubectl with its own TLS ClientHello). Close such listeners with
    shutdown(SHUT_RDWR) first, which wakes accept()."""
    before = {t.ident for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + 3
    while (left := _accepting_threads(before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        pytest.fail(f"threads still accepting after the module: {left}; shut the listener "
                    "down (socket.shutdown) before closing it", pytrace=False)


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden files instead of comparing against them")
    parser.addoption("--backend", choices=(*BACKENDS, *GROUPS), default="double",
                     help="the sandbox the end-to-end tests run on: the API double (default), "
                          "the real control plane (`python -m sandbox up --backend real`), "
                          "real Istio on it (`--backend real --istio real`), both = the first "
                          "two, or all three")
    parser.addoption("--pod-network", choices=("netns", "loopback"), default=None,
                     help="the real backend's pods: a network namespace each, or an address each "
                          "in the host's (default: $SANDBOX_POD_NETWORK, else the sandbox's)")


def pytest_configure(config):
    """`--pod-network` reaches every sandbox the tests start, fixtures of their own included,
    as `python -m sandbox up`'s default ($SANDBOX_POD_NETWORK)."""
    if config.getoption("--pod-network"):
        os.environ["SANDBOX_POD_NETWORK"] = config.getoption("--pod-network")


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
