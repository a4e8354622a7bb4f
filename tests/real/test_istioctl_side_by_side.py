"""`kubectl mesh` beside the real `istioctl` (built from istio.io/istio by `make
real-components`) on the same sandbox mesh: the proxy-config tables must hold the same rows.

The one documented difference: istioctl pads its last column with spaces (Go's tabwriter);
ours ends each line at its last character. Lines are compared with trailing spaces removed.
"""

from __future__ import annotations

import subprocess

import pytest

from sandbox.real.controlplane import locate_binaries

TABLES = ("routes", "clusters", "listeners", "endpoints", "listeners --verbose=false", "secrets")


@pytest.fixture(scope="module")
def istioctl():
    return str(locate_binaries() / "istioctl")


@pytest.fixture(scope="module")
def proxies(sandbox):
    gateway = sandbox.pods("istio-system", "istio=ingressgateway")[0]["metadata"]["name"]
    sidecar = sandbox.pods("istioinaction", "app=catalog,version=v1")[0]["metadata"]["name"]
    return {"gateway": (gateway, "istio-system"), "sidecar": (sidecar, "istioinaction")}


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("proxy", ["gateway", "sidecar"])
def test_proxy_config_tables_have_the_same_rows(sandbox, mesh, istioctl, proxies, proxy, table):
    pod, namespace = proxies[proxy]
    table, *flags = table.split()
    theirs = subprocess.run([istioctl, "proxy-config", table, pod, "-n", namespace, *flags],
                            capture_output=True, text=True, timeout=60, env=sandbox.env())
    ours = mesh(table, pod, "-n", namespace, *flags)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert lines(theirs.stdout)  # something to compare
    assert lines(ours.stdout) == lines(theirs.stdout)
