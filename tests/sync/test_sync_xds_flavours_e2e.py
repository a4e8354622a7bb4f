"""A mesh where Delta and SotW proxies meet, through REAL kubectl against real Envoys: the
sandbox bootstrap says DELTA_GRPC (real Istio's default, `ISTIO_DELTA_XDS` true) unless the
pod's `proxy.istio.io/config` sets `proxyMetadata: {ISTIO_DELTA_XDS: "false"}`, and `sync`,
`sync --verify` and `sync --diff` read both kinds of proxy alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sandbox.testing import MeshCli as Mesh
from sandbox.testing import RunningSandbox

# In the slow matrix: a sandbox of its own (the default scenario with catalog-v2 on SotW).
pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]
DEFAULT = Path(__file__).resolve().parents[2] / "sandbox" / "scenarios" / "default.yaml"
SOTW = '{"proxyMetadata": {"ISTIO_DELTA_XDS": "false"}}'
VS_PATCH = '[{"op":"add","path":"/spec/http/0/timeout","value":"7s"}]'
VS_UNDO = '[{"op":"remove","path":"/spec/http/0/timeout"}]'


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, backend):
    docs = [d for d in yaml.safe_load_all(DEFAULT.read_text()) if d]
    [v2] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "catalog-v2"]
    template = v2["spec"]["template"]["metadata"]
    template.setdefault("annotations", {})["proxy.istio.io/config"] = SOTW
    root = tmp_path_factory.mktemp("xds-flavours")
    path = root / "mesh.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    with RunningSandbox(root / "state", scenarios=[path], backend=backend) as sb:
        m = Mesh(sb)
        out = m("sync", "--wait", "--timeout", "60s")
        assert out.returncode == 0, out.stderr
        yield m


def _xds_server(mesh, pod: dict) -> str:
    out = mesh("bootstrap", f"pod/{pod['metadata']['name']}", "-n",
               pod["metadata"]["namespace"])
    assert out.returncode == 0, out.stderr
    [line] = [l for l in out.stdout.splitlines() if l.startswith("xDS Server:")]
    return line.split(":", 1)[1].split()[1]  # "ADS <api type> xds-grpc <address>"


def test_delta_by_default_sotw_where_the_pod_says_so(mesh):
    v2 = mesh.sb.pods("istioinaction", "app=catalog,version=v2")
    assert v2 and {_xds_server(mesh, p) for p in v2} == {"GRPC"}
    [v1] = mesh.sb.pods("istioinaction", "app=catalog,version=v1")
    [gateway] = mesh.sb.pods("istio-system", "istio=ingressgateway")
    assert _xds_server(mesh, v1) == _xds_server(mesh, gateway) == "DELTA_GRPC"


def test_sync_verify_and_diff_read_both_flavours_alike(mesh):
    proxies = json.loads(mesh("sync", "-o", "json").stdout)
    assert len(proxies) == 4, proxies
    assert all({p["types"][t]["status"] for t in ("CDS", "LDS", "EDS", "RDS")} == {"SYNCED"}
               for p in proxies), proxies
    mesh.sb.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type", "json",
                    "-p", VS_PATCH)
    try:
        out = mesh("sync", "--wait", "--timeout", "60s")
        assert out.returncode == 0, out.stderr
        verify = mesh("sync", "--verify", "-o", "json")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        for pod in mesh.sb.pods("istioinaction", "app=catalog") + mesh.sb.pods(
                "istio-system", "istio=ingressgateway"):
            diff = mesh("sync", pod["metadata"]["name"], "-n", pod["metadata"]["namespace"],
                        "--diff")
            assert diff.returncode == 0, diff.stdout + diff.stderr
            assert "Routes Match" in diff.stdout
    finally:
        mesh.sb.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type",
                        "json", "-p", VS_UNDO, check=False)
