"""A legacy `auth-provider` (gcp, azure, oidc) in the kubeconfig: one line naming the exec
credential plugin that replaces it, exit 6, and no request sent - through the real
`kubectl-mesh-routes` executable, against a plain-HTTP listener that records requests."""

from __future__ import annotations

import pytest

from plain_http import SECRET, RecordingServer, mesh, write_kubeconfig

from kubectl_mesh.errors import ExitCode


@pytest.mark.parametrize("provider, config, plugin, how", [
    ("gcp", {"access-token": SECRET, "cmd-path": "/usr/bin/gcloud"}, "gke-gcloud-auth-plugin",
     "gcloud container clusters get-credentials"),
    ("azure", {"access-token": SECRET, "tenant-id": "t"}, "kubelogin",
     "kubelogin convert-kubeconfig"),
    ("oidc", {"id-token": SECRET, "idp-issuer-url": "https://issuer"}, "kubelogin",
     "kubectl oidc-login setup"),
    ("keystone", {}, "an exec credential plugin", "ask your cluster's provider"),
])
def test_an_auth_provider_names_the_exec_plugin_that_replaces_it(tmp_path, provider, config,
                                                                  plugin, how):
    with RecordingServer() as server:
        kubeconfig = write_kubeconfig(tmp_path / "config", server=server.url, user={
            "auth-provider": {"name": provider, "config": config}})
        result = mesh("routes", "--kubeconfig", str(kubeconfig), "deploy/x", home=tmp_path)
        assert server.requests == []
    assert result.code == ExitCode.BAD_INPUT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"uses auth-provider '{provider}'" in lines[0] and 'user "alice"' in lines[0]
    assert f"use the exec credential plugin {plugin} instead" in lines[0] and how in lines[0]
    assert SECRET not in result.stderr
