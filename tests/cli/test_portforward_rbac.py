"""Port-forward under least-privilege RBAC, end to end through kubectl on the sandbox.

A WebSocket port-forward is a GET, authorized as `get` (and from 1.35 also `create`); kubectl's
SPDY POST needs `create` only. So a Role with `create pods/portforward` alone lets
`kubectl port-forward` work but refuses our WebSocket: we then fall back to kubectl, as kubectl
itself falls back to SPDY, and say so once. tests/real/test_stream_rbac.py checks the rule
against the real API server."""

from __future__ import annotations

import pytest

GATEWAY = ("deploy/istio-ingressgateway", "-n", "istio-system")
NOTE = "note: RBAC refused the WebSocket port-forward"


@pytest.fixture
def as_user(sandbox, mesh):
    def run(deny: list[str], *args: str, version: str = "1.37"):
        (sandbox.state / "kube-version").write_text(version)
        path = sandbox.add_user(f"pf-{abs(hash((tuple(deny), version))) % 10**8}", deny)
        return mesh(*args, env=mesh.env(KUBECONFIG=str(path)))

    yield run
    (sandbox.state / "kube-version").unlink(missing_ok=True)


def test_create_only_falls_back_to_kubectl_and_says_so_once(as_user):
    out = as_user(["get pods/portforward"], "clusters", "deploy/catalog-v2", "-n", "istioinaction",
                  "--all-pods", "--fqdn", "catalog")
    assert out.returncode == 0, out.stderr
    assert "catalog.istioinaction.svc.cluster.local" in out.stdout
    assert out.stderr.count(NOTE) == 1, out.stderr  # two pods, one note
    assert "using kubectl port-forward (SPDY)" in out.stderr


@pytest.mark.double_only("the real backend is a 1.37 API server; <state>/kube-version makes "
                         "only the double authorize as 1.34")
def test_get_only_is_enough_on_1_34_without_any_note(as_user):
    out = as_user(["create pods/portforward"], "routes", *GATEWAY, version="1.34")
    assert out.returncode == 0, out.stderr
    assert "catalog.istioinaction.io" in out.stdout
    assert NOTE not in out.stderr


def test_get_only_on_1_37_names_both_paths(as_user):
    out = as_user(["create pods/portforward"], "routes", *GATEWAY)
    assert out.returncode == 4, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: cannot create pods/portforward in namespace istio-system")
    assert "the WebSocket path was refused too: ask for get and create on pods/portforward" \
        in lines[0]
    assert "Traceback" not in out.stderr


def test_both_verbs_use_the_websocket_silently(as_user):
    out = as_user([], "routes", *GATEWAY)
    assert out.returncode == 0, out.stderr
    assert NOTE not in out.stderr
