"""Impersonation end to end: `--as`/`--as-group` and the kubeconfig user's `as`/`as-groups`
reach every request the product makes (API, WebSocket port-forward, the kubectl fallback),
and the sandbox's API server honours Impersonate-* like the real one (constrained
impersonation first from 1.36, then the legacy `impersonate` on users/groups; the request is
then authorized as the impersonated user)."""

from __future__ import annotations

import pytest
import yaml

from sandbox.testing import MeshCli, RunningSandbox

GATEWAY = ("deploy/istio-ingressgateway", "-n", "istio-system")


@pytest.fixture(scope="module")
def sb(tmp_path_factory, backend):
    with RunningSandbox(tmp_path_factory.mktemp("sb") / "state", backend=backend) as running:
        yield running


@pytest.fixture(scope="module")
def mesh(sb) -> MeshCli:
    return MeshCli(sb)


def kubectl_as(sb, kubeconfig, *args):
    return sb.kubectl("--kubeconfig", str(kubeconfig), *args, check=False)


# ---- the API double ---------------------------------------------------------------------------


def test_the_api_server_authorizes_an_impersonated_request_as_that_user(sb):
    sb.add_user("imp-viewer", ["list pods"])
    out = kubectl_as(sb, sb.kubeconfig, "get", "pods", "-n", "istio-system", "--as", "imp-viewer")
    assert out.returncode == 1, out.stdout
    assert 'User "imp-viewer" cannot list resource "pods"' in out.stderr


def test_impersonating_is_refused_first_by_constrained_impersonation(sb):
    """A 1.37 API server tries the constrained mode `user-info` before the legacy
    `impersonate`; when both refuse, the 403 is the first refusal: `impersonate-on:user-info:
    <the request's verb>` on what the request asks (k8s.io/apiserver
    pkg/endpoints/filters/impersonation/constrained_impersonation.go `getImpersonatedUser`)."""
    caller = sb.add_user("no-imp", ["impersonate users"])
    out = kubectl_as(sb, caller, "get", "pods", "-n", "istio-system", "--as", "imp-viewer")
    assert out.returncode == 1
    assert ('pods is forbidden: User "no-imp" cannot impersonate-on:user-info:list resource '
            '"pods" in API group "" in the namespace "istio-system"') in out.stderr, out.stderr
    out = kubectl_as(sb, caller, "get", "virtualservices", "catalog", "-n", "istioinaction",
                     "--as", "imp-viewer")
    assert ('virtualservices.networking.istio.io "catalog" is forbidden: User "no-imp" cannot '
            'impersonate-on:user-info:get resource "virtualservices" in API group '
            '"networking.istio.io" in the namespace "istioinaction"') in out.stderr, out.stderr
    groups = sb.add_user("no-imp-groups", ["impersonate groups"])
    out = kubectl_as(sb, groups, "get", "pods", "-n", "istio-system", "--as", "imp-viewer",
                     "--as-group", "devs")
    assert 'User "no-imp-groups" cannot impersonate-on:user-info:list' in out.stderr
    # the legacy verb still suffices: its refusal is never the one reported
    sb.add_user("imp-all-rights", [])
    allowed = sb.add_user("imp-legacy", ["list pods"])
    out = kubectl_as(sb, allowed, "get", "pods", "-n", "istio-system", "--as", "imp-all-rights")
    assert out.returncode == 0, out.stderr


@pytest.mark.double_only("the real backend is a 1.37 API server; <state>/kube-version makes "
                         "only the double judge impersonation as 1.35 (legacy only)")
def test_before_1_36_only_the_legacy_impersonate_verb_is_asked(sb):
    (sb.state / "kube-version").write_text("1.35")
    try:
        caller = sb.add_user("no-imp-135", ["impersonate users"])
        out = kubectl_as(sb, caller, "get", "pods", "-n", "istio-system", "--as", "imp-viewer")
        assert out.returncode == 1
        assert ('users "imp-viewer" is forbidden: User "no-imp-135" cannot impersonate resource '
                '"users" in API group "" at the cluster scope') in out.stderr, out.stderr
        groups = sb.add_user("no-imp-groups-135", ["impersonate groups"])
        out = kubectl_as(sb, groups, "get", "pods", "-n", "istio-system", "--as", "imp-viewer",
                         "--as-group", "devs")
        assert ('groups "devs" is forbidden: User "no-imp-groups-135" cannot impersonate '
                'resource "groups"') in out.stderr, out.stderr
    finally:
        (sb.state / "kube-version").unlink(missing_ok=True)


def test_a_user_the_server_does_not_know_has_no_rights(sb):
    out = kubectl_as(sb, sb.kubeconfig, "get", "pods", "-n", "istio-system", "--as", "nobody")
    assert out.returncode == 1
    assert 'User "nobody" cannot list resource "pods"' in out.stderr


# ---- the product ------------------------------------------------------------------------------


def test_as_a_denied_user_gets_that_users_403(sb, mesh):
    sb.add_user("imp-nopf", ["get pods/portforward", "create pods/portforward"])
    out = mesh("routes", *GATEWAY, "--as", "imp-nopf")
    assert out.returncode == 4, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pods/portforward in namespace istio-system" in errors[0], \
        out.stderr
    assert 'as user "imp-nopf"' in out.stderr
    plain = mesh("routes", *GATEWAY)
    assert plain.returncode == 0 and "catalog.istioinaction.io" in plain.stdout, plain.stderr


def test_as_group_reaches_the_server(sb, mesh):
    caller = sb.add_user("imp-caller-g", ["impersonate groups"])
    out = mesh("routes", *GATEWAY, "--as", "imp-viewer", "--as-group", "devs", "--as-group",
               "ops", env=mesh.env(KUBECONFIG=str(caller)))
    assert out.returncode == 4, out.stderr
    [error] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    # the API server names the constrained mode's refusal; the line says what to ask for
    assert "may not impersonate to get deployments.apps in namespace istio-system" in error, error
    assert "ask for RBAC verb impersonate on users (and groups, uids)" in error
    assert "impersonate:user-info on users in API group authentication.k8s.io" in error
    assert 'user "imp-caller-g" impersonating with --as' in error
    sb.add_user("imp-all", [])
    allowed = mesh("routes", *GATEWAY, "--as", "imp-all", "--as-group", "devs")
    assert allowed.returncode == 0, allowed.stderr


def test_the_kubeconfig_users_as_is_used_and_the_flag_overrides_it(sb, mesh, tmp_path):
    sb.add_user("imp-cfg", ["get pods/portforward", "create pods/portforward"])
    config = yaml.safe_load(sb.kubeconfig.read_text())
    for entry in config["users"]:
        entry["user"]["as"] = "imp-cfg"
        entry["user"]["as-groups"] = ["devs"]
    path = tmp_path / "kubeconfig-as"
    path.write_text(yaml.safe_dump(config))
    env = mesh.env(KUBECONFIG=str(path))
    out = mesh("routes", *GATEWAY, env=env)
    assert out.returncode == 4 and 'as user "imp-cfg"' in out.stderr, out.stderr
    sb.add_user("imp-ok", [])
    out = mesh("routes", *GATEWAY, "--as", "imp-ok", env=env)
    assert out.returncode == 0, out.stderr


def test_the_kubectl_port_forward_fallback_impersonates_too(sb, mesh):
    """The caller may not port-forward at all; the impersonated user may `create` but not `get`
    pods/portforward: the WebSocket (a GET) is refused, and kubectl port-forward (a POST)
    works only if it impersonates the same user."""
    caller = sb.add_user("imp-caller-pf", ["get pods/portforward", "create pods/portforward"])
    sb.add_user("imp-create-only", ["get pods/portforward"])
    out = mesh("routes", *GATEWAY, "--as", "imp-create-only", env=mesh.env(KUBECONFIG=str(caller)))
    assert out.returncode == 0, out.stderr
    assert "catalog.istioinaction.io" in out.stdout
    assert "using kubectl port-forward" in out.stderr


def test_groups_without_a_user_is_bad_input(mesh):
    out = mesh("routes", *GATEWAY, "--as-group", "devs")
    assert out.returncode == 6, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a user to impersonate" in lines[0] and "--as" in lines[0]
