"""Our tables on the config dumps istioctl's own writer tests use, against istioctl's expected
output in the same module (istio.io/istio, the pinned version; `go mod download` puts it in
the module cache, which `make real-components` has filled)."""

from __future__ import annotations

import io
import json
import pathlib
import subprocess

import pytest

from kubectl_mesh.cli import bootstrap, ecds, endpoints, routes, secrets

ISTIO = "istio.io/istio"


@pytest.fixture(scope="module")
def istio_source() -> pathlib.Path:
    versions = pathlib.Path(__file__).resolve().parents[2] / "sandbox/real/go/versions.env"
    version = next(line.split("=", 1)[1].strip() for line in versions.read_text().splitlines()
                   if line.startswith("ISTIO="))
    out = subprocess.run(["go", "mod", "download", "-json", f"{ISTIO}@{version}"],
                         capture_output=True, text=True, timeout=600, check=True)
    return pathlib.Path(json.loads(out.stdout)["Dir"])


@pytest.mark.parametrize("case", ["istio", "spire"])
def test_secrets_as_istioctl_prints_them(istio_source, case):
    data = istio_source / "istioctl/pkg/writer/envoy/configdump/testdata/secret" / case
    out, err = io.StringIO(), io.StringIO()
    assert secrets.main(["--file", str(data / "config_dump.json")], out, err) == 0, err.getvalue()
    ours = [line.rstrip() for line in out.getvalue().splitlines()]
    theirs = [line.rstrip() for line in (data / "output").read_text().splitlines()]
    assert ours == theirs


WRITER = "istioctl/pkg/writer/envoy/configdump/testdata"


@pytest.mark.parametrize("command, dump, flags, expected", [
    (endpoints, "endpoint/configdump.json", [], "endpoint/emptyfilter_output.txt"),
    (endpoints, "endpoint/configdump.json", ["--port", "8080"], "endpoint/portfilter_output.txt"),
    (routes, "routes/empty-gateway/configdump.json", [], "routes/empty-gateway/output.txt"),
    (routes, "routes/istio-gateway-http-route-prefix/configdump.json", [],
     "routes/istio-gateway-http-route-prefix/output.txt"),
    (routes, "routes/k8s-gateway-http-route-path-prefix/configdump.json", [],
     "routes/k8s-gateway-http-route-path-prefix/output.txt"),
    (ecds, "ecds/configdump.json", [], "ecds/output.txt"),
    (bootstrap, "bootstrapdump.json", [], "versionsummary.txt"),
], ids=["endpoints", "endpoints-port", "routes-empty-gateway", "routes-istio-gateway",
        "routes-k8s-gateway", "ecds", "bootstrap-versions"])
def test_tables_as_istioctl_writes_them(istio_source, command, dump, flags, expected):
    out, err = io.StringIO(), io.StringIO()
    code = command.main(["--file", str(istio_source / WRITER / dump), *flags], out, err)
    assert code == 0, err.getvalue()
    ours = [line.rstrip() for line in out.getvalue().splitlines()]
    theirs = [line.rstrip() for line in (istio_source / WRITER / expected).read_text().splitlines()]
    assert ours == theirs


def test_endpoints_section_of_istioctl_proxy_config_all(istio_source):
    """`istioctl proxy-config all` prefixes each name with its kind (`endpoint/...`); compared
    cell by cell without that prefix. Holds an internal-listener endpoint
    (`envoy://connect_originate/<id>`), which lost its endpoint id before."""
    data = istio_source / "istioctl/pkg/proxyconfig/testdata"
    out, err = io.StringIO(), io.StringIO()
    assert endpoints.main(["--file", str(data / "config_dump.json")], out, err) == 0, err.getvalue()
    sections = (data / "config_dump_summary.txt").read_text().split("\n\n")
    theirs = next(s for s in sections if s.startswith("NAME") and "LOCALITY" in s.split("\n")[0])
    rows = [line.split() for line in theirs.strip().splitlines()]
    rows = [rows[0]] + [[row[0].removeprefix("endpoint/"), *row[1:]] for row in rows[1:]]
    assert [line.split() for line in out.getvalue().strip().splitlines()] == rows
