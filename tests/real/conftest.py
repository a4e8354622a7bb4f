"""The real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler built
by `make real-components`), one per test module, and real Istio on it (`istio_meshes`). Tests here carry the `real` marker: `make test` builds the components and runs them,
`make test-fast` leaves them out."""

from __future__ import annotations

import contextlib

import pytest

from sandbox.real.controlplane import ControlPlane, ControlPlaneError, locate_binaries
from sandbox.real.istio import Istiod, install


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/real/" in str(item.fspath):
            item.add_marker(pytest.mark.real)


@pytest.fixture(scope="module")
def control_planes(tmp_path_factory):
    """`control_planes(**ControlPlane kwargs)` starts one more; all stop with the module."""
    started: list[ControlPlane] = []

    def start(**kwargs) -> ControlPlane:
        cp = ControlPlane(tmp_path_factory.mktemp("real") / "state", **kwargs)
        started.append(cp)
        try:
            return cp.start()
        except ControlPlaneError as e:
            pytest.fail(f"real control plane did not start: {e}", pytrace=False)

    try:
        yield start
    finally:
        for cp in started:
            cp.stop()


@pytest.fixture(scope="module")
def control_plane(control_planes):
    return control_planes()


@pytest.fixture(scope="module")
def binaries():
    return locate_binaries()


@pytest.fixture(scope="module")
def istio_meshes(control_planes, binaries):
    """`istio_meshes(values=(), env=None)` -> (control plane, istiod): a control plane with
    the minimal profile installed (`--set` `values` added) and real istiod (`env` added to
    its environment) running and ready; all stop with the module (docs/real-istio.md)."""
    with contextlib.ExitStack() as stack:
        def start(values: tuple[str, ...] = (), env: dict[str, str] | None = None):
            cp = control_planes()
            istiod = Istiod(cp, binaries=binaries, env=env)
            install(cp, binaries / "istioctl", istiod.address, extra=values)
            stack.enter_context(istiod)
            return cp, istiod
        yield start


@pytest.fixture(scope="module")
def kubelet_clusters(control_planes):
    """`kubelet_clusters(**kubelet)` -> (control plane, started sandbox Kubelet with those
    arguments) on a control plane of its own; the kubelet stops with the module, before its
    control plane."""
    from sandbox.real.kubelet import Kubelet

    with contextlib.ExitStack() as stack:
        def start(**kubelet):
            cp = control_planes()
            node = Kubelet(cp, **kubelet).start()
            stack.callback(node.stop)
            return cp, node
        yield start
