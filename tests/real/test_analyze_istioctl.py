"""`kubectl mesh analyze --use-kube=false` beside the real `istioctl analyze --use-kube=false`
(built by `make real-components`) on the same files: the same messages, line for line.

The one documented difference: istioctl links istio.io/v<its minor>/docs, we link
istio.io/latest/docs; the version segment is normalised before comparing the JSON.
"""

from __future__ import annotations

import io
import json
import pathlib
import re
import subprocess

import pytest

from kubectl_mesh.cli.analyze import main
from sandbox.real.controlplane import locate_binaries
from tests.analyze.test_analyzers import DR, GW, SE, SVC, vs

SCENARIOS = pathlib.Path(__file__).resolve().parents[2] / "sandbox" / "scenarios"
DATA = pathlib.Path(__file__).resolve().parents[1] / "analyze" / "data"

CASES = {
    "default-scenario": (SCENARIOS / "default.yaml").read_text(),
    "default-and-fix": (SCENARIOS / "default.yaml").read_text() + "\n---\n"
                       + (SCENARIOS / "catalog-destinationrule.yaml").read_text(),
    "subsets-mirror-gateways": vs("""\
        - destination: {host: reviews, subset: v1}
          weight: 50
        - destination: {host: reviews, subset: v2}
          weight: 50""", "\n  gateways: [nogw, gw, mesh]").replace(
        "  - route:\n", "  - mirror: {host: reviews, subset: v7}\n    route:\n") + DR + GW,
    "mesh-host-conflicts": vs("- destination: {host: reviews}") + vs(
        "- destination: {host: reviews}").replace("name: r,", "name: s,").replace(
        "hosts: [reviews]", "hosts: [reviews.ns.svc.cluster.local]") + vs(
        "- destination: {host: reviews}").replace("name: r,", "name: t,").replace(
        "hosts: [reviews]", "hosts: [reviews.other.svc.cluster.local]") + SE + SVC,
    "tls-and-validation": (DATA / "tls-and-validation.yaml").read_text(),
    "serviceentries": (DATA / "serviceentries.yaml").read_text(),
    "deprecated-fields": (DATA / "deprecated-fields.yaml").read_text(),
    "webhooks": (DATA / "webhooks.yaml").read_text(),
    # Not compared: a VirtualService exported to its namespace alone that shares a host with
    # exported ones. istioctl reports each VirtualService once, for whichever host its Go map
    # iteration meets first, so its output changes from run to run.
}


@pytest.fixture(scope="module")
def istioctl():
    return str(locate_binaries() / "istioctl")


def ours(path: str, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--use-kube=false", path, "-A", *args], stdout=out, stderr=err)
    return code, out.getvalue()


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_messages_as_istioctl(tmp_path, istioctl, case):
    path = tmp_path / f"{case}.yaml"
    path.write_text(CASES[case])
    theirs = subprocess.run([istioctl, "analyze", "--use-kube=false", str(path), "-A",
                             "--color=false"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    code, text = ours(str(path))
    assert text.strip().splitlines() == theirs.stdout.strip().splitlines(), theirs.stderr
    # istioctl exits 79 on findings, we exit 7 (this suite's FINDINGS)
    assert (code == 7) == (theirs.returncode == 79), theirs.stderr
    theirs_json = subprocess.run([istioctl, "analyze", "--use-kube=false", str(path), "-A",
                                  "-o", "json"], capture_output=True, text=True, timeout=60,
                                 cwd=tmp_path)
    normalised = re.sub(r"istio\.io/v\d+\.\d+/", "istio.io/latest/", theirs_json.stdout)
    assert json.loads(ours(str(path), "-o", "json")[1]) == json.loads(normalised)


def test_the_cases_are_not_all_clean(tmp_path):
    found = set()
    for case, text in CASES.items():
        path = tmp_path / f"{case}.yaml"
        path.write_text(text)
        found |= set(re.findall(r"\[(IST\d{4})\]", ours(str(path))[1]))
    assert {"IST0002", "IST0101", "IST0106", "IST0109", "IST0128", "IST0129", "IST0132", "IST0133",
            "IST0134", "IST0163", "IST0164", "IST0177"} <= found


def test_mesh_config_file_as_istioctl_reads_it(tmp_path, istioctl):
    """--meshConfigFile: DNS capture with auto-allocation turns IST0134 off, in both."""
    path = DATA / "serviceentries.yaml"
    mesh = str(DATA / "mesh-autoallocate.yaml")
    theirs = subprocess.run([istioctl, "analyze", "--use-kube=false", str(path), "-A",
                             "--color=false", "--meshConfigFile", mesh], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    code, text = ours(str(path), "--meshConfigFile", mesh)
    assert text.strip().splitlines() == theirs.stdout.strip().splitlines(), theirs.stderr
    assert "IST0134" not in text and "IST0177" in text
