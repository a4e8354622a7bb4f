"""`kubectl mesh sync POD --diff` reaches istiod the way `sync` does, end to end through REAL
kubectl against the sandbox: istiod's config dump over XDS (`istio.io/debug/config_dump`
with the proxy id, as `istioctl proxy-status POD` asks it) while its HTTP debug endpoints
are off, HTTP /debug/config_dump as the fallback, one line naming each way's failure when
neither works. Each test restores what it changes."""

from __future__ import annotations

import json
import pathlib

import pytest


pytestmark = pytest.mark.timeout(180)
# Why tests run on the sandbox istiod only (skipped with `--backend istio`)
NACK_FAULT = ("the NACK is made by the annotation sandbox.kubectl-mesh.io/invalid, which only "
              "the sandbox istiod turns into an invalid cluster")
DEBUG_SWITCH = ("ENABLE_DEBUG_ON_HTTP flipped at run time (istiod_debug_http) is a state file "
                "only the sandbox istiod reads; real istiod reads the variable once at start "
                "(pilot/pkg/features/pilot.go EnableDebugOnHTTP)")
GATEWAY = ("deploy/istio-ingressgateway", "-n", "istio-system")
SCENARIOS = pathlib.Path(__file__).resolve().parents[2] / "sandbox" / "scenarios"
NO_TOKEN = "create serviceaccounts/token"
XDS_NOTE = "note: istiod's XDS debug interface did not give the config dump"


@pytest.fixture
def no_protos(tmp_path, mesh) -> dict[str, str]:
    """The environment of an install without the [xds] extra: `envoy` (xds-protos' package)
    cannot be imported by the plugin."""
    blocker = tmp_path / "envoy"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('no module named envoy')\n")
    return mesh.env(PYTHONPATH=str(tmp_path))


def _sections(stdout: str) -> dict[str, dict]:
    return {s["section"]: s for s in json.loads(stdout)["sections"]}


def _wait_synced(mesh) -> None:
    out = mesh("sync", "--wait", "--timeout", "30s")
    assert out.returncode == 0, out.stderr


@pytest.mark.sandbox_istiod_only(DEBUG_SWITCH)
def test_diff_reads_istiods_config_dump_over_xds_while_http_debug_is_off(mesh, sandbox):
    with sandbox.istiod_debug_http(False):
        out = mesh("sync", *GATEWAY, "--diff")
        assert out.returncode == 0, out.stderr
        assert out.stdout == "Clusters Match\nListeners Match\nRoutes Match\n"
        assert "(XDS 15012) with the proxy's own config dump" in out.stderr
        assert "note:" not in out.stderr
        data = mesh("sync", *GATEWAY, "--diff", "-o", "json")
    assert data.returncode == 0, data.stderr
    counts = {name: (s["istiod"], s["envoy"]) for name, s in _sections(data.stdout).items()}
    assert all(i == e > 0 for i, e in counts.values()), counts


def test_both_ways_give_the_same_comparison(mesh, sandbox):
    over_xds = mesh("sync", *GATEWAY, "--diff", "-o", "json")
    with sandbox.denied(NO_TOKEN):  # no XDS: syncz and the dump over HTTP
        over_http = mesh("sync", *GATEWAY, "--diff", "-o", "json")
    assert over_xds.returncode == over_http.returncode == 0, over_xds.stderr + over_http.stderr
    assert "(XDS 15012)" in over_xds.stderr and "(HTTP 15014)" in over_http.stderr
    assert _sections(over_xds.stdout) == _sections(over_http.stdout)


@pytest.mark.sandbox_istiod_only(NACK_FAULT)
def test_diff_over_xds_finds_what_envoy_rejected(mesh, sandbox):
    sandbox.kubectl("apply", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"))
    try:
        _wait_synced(mesh)
        sandbox.kubectl("annotate", "destinationrule", "catalog", "-n", "istioinaction",
                        "sandbox.kubectl-mesh.io/invalid=true")
        sandbox.wait_for(lambda: "ERROR (" in mesh("sync", "-n", "istioinaction").stdout,
                         timeout=15, what="CDS ERROR")
        with sandbox.istiod_debug_http(False):
            diff = mesh("sync", "deploy/catalog", "-n", "istioinaction", "--diff")
        assert diff.returncode == 7, diff.stderr
        assert "(XDS 15012)" in diff.stderr
        assert diff.stdout.startswith("Clusters Don't Match\n--- Istiod Clusters")
        assert '-    "lbPolicy": "RING_HASH"' in diff.stdout  # protojson's spelling
        assert "Listeners Match" in diff.stdout and "Routes Match" in diff.stdout
    finally:
        sandbox.kubectl("delete", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"),
                        check=False)
        _wait_synced(mesh)


def test_without_the_envoy_protos_diff_falls_back_to_http_and_says_why(mesh, no_protos):
    out = mesh("sync", *GATEWAY, "--diff", env=no_protos)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Clusters Match\nListeners Match\nRoutes Match\n"
    notes = [line for line in out.stderr.splitlines() if line.startswith("note:")]
    assert notes == [f"{XDS_NOTE} (XDS 15012: naming the config dump's fields needs the Envoy "
                     "API protos (pip install 'kubectl-mesh[xds]')); read /debug/config_dump "
                     "over HTTP 15014"], out.stderr


@pytest.mark.sandbox_istiod_only(DEBUG_SWITCH)
def test_when_neither_way_gives_the_dump_one_line_names_both(mesh, sandbox, no_protos):
    with sandbox.istiod_debug_http(False):
        out = mesh("sync", *GATEWAY, "--diff", env=no_protos)
    assert out.returncode == 5, out.stderr  # UNREACHABLE (README: exit codes)
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    line = lines[0]
    assert line.startswith("error: cannot read what istiod istiod-")
    assert "would send istio-ingressgateway-" in line
    assert "XDS 15012: naming the config dump's fields needs the Envoy API protos" in line
    assert ("HTTP 15014: answered 404 to /debug/config_dump: 404 page not found "
            "(ENABLE_DEBUG_ON_HTTP=false?)") in line


@pytest.mark.sandbox_istiod_only(DEBUG_SWITCH)
def test_when_xds_is_unreachable_and_http_is_off_one_line_names_both(mesh, sandbox):
    with sandbox.denied(NO_TOKEN), sandbox.istiod_debug_http(False):
        out = mesh("sync", *GATEWAY, "--diff")
    assert out.returncode == 5, out.stderr
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "XDS 15012: no token for serviceaccount istio-system/default" in lines[0]
    assert "HTTP 15014: answered 404" in lines[0] and "ENABLE_DEBUG_ON_HTTP=false?" in lines[0]


@pytest.mark.sandbox_istiod_only(DEBUG_SWITCH)
def test_diff_through_xds_address_needs_no_istiod_pod(mesh, sandbox):
    address = f"{sandbox.pod_ip('istio-system', 'app=istiod')}:15012"
    with sandbox.istiod_debug_http(False):
        out = mesh("sync", *GATEWAY, "--diff", "--xds-address", address,
                   "--authority", "istiod.istio-system.svc")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Clusters Match\nListeners Match\nRoutes Match\n"
    assert f"(XDS {address})" in out.stderr
