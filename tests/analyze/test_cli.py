"""`kubectl mesh analyze` on files alone (`--use-kube=false`): inputs, bad input, output
formats, thresholds, suppressions and exit codes, through `main([...])`."""

from __future__ import annotations

import io
import json
import pathlib

import pytest
import yaml

from kubectl_mesh.cli.analyze import main

SCENARIOS = pathlib.Path(__file__).resolve().parents[2] / "sandbox" / "scenarios"
DEFAULT = str(SCENARIOS / "default.yaml")


def line_of(path: str, text: str) -> int:
    """The 1-based line of the first occurrence of `text` in the file (where istioctl's
    reference for a VirtualService destination points)."""
    for number, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


V1_LINE = line_of(DEFAULT, "subset: version-v1}")
FIX = str(SCENARIOS / "catalog-destinationrule.yaml")

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: r
  namespace: ns
spec:
  hosts: [reviews]
  gateways: [gw]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
"""


def analyze(*args: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    import sys

    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = main(["--use-kube=false", *args], stdout=out, stderr=err)
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


def test_the_default_scenario_and_its_fix():
    code, out, err = analyze(DEFAULT, "-n", "istioinaction")
    assert code == 7
    assert out.splitlines() == [
        f'Error [IST0101] (VirtualService istioinaction/catalog-v1-v2 {DEFAULT}:{V1_LINE}) Referenced '
        f'host+subset in destinationrule not found: '
        f'"catalog.istioinaction.svc.cluster.local+version-v1"',
        f'Error [IST0101] (VirtualService istioinaction/catalog-v1-v2 {DEFAULT}:{V1_LINE + 2}) Referenced '
        f'host+subset in destinationrule not found: '
        f'"catalog.istioinaction.svc.cluster.local+version-v2"']
    code, out, err = analyze(DEFAULT, FIX, "-n", "istioinaction")
    assert (code, out) == (0, "")
    assert err == f"\u2714 No validation issues found when analyzing:\n  - {DEFAULT}\n  - {FIX}\n"


def test_namespace_selection_default_and_all():
    # objects of istioinaction are not those of `default` (istioctl: -n, else default)
    assert analyze(DEFAULT)[:2] == (0, "")
    code, out, _ = analyze(DEFAULT, "-A")
    assert code == 7 and out.count("IST0101") == 2


def test_objects_without_namespace_take_the_selected_one(tmp_path):
    f = tmp_path / "vs.yaml"
    f.write_text(VS.replace("  namespace: ns\n", ""))
    code, out, _ = analyze(str(f), "-n", "team")
    assert code == 7
    assert "(VirtualService team/r " in out


def test_folder_recursive_list_and_stdin(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "vs.yaml").write_text(VS)
    (tmp_path / "notes.txt").write_text("not yaml: [")
    gw_list = {"apiVersion": "v1", "kind": "List", "items": [{
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "ns"},
        "spec": {"selector": {"istio": "ingressgateway"},
                 "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                              "hosts": ["*"]}]}}]}
    (tmp_path / "gw.json").write_text(json.dumps(gw_list))
    # without -R the subfolder is not read: only the Gateway, nothing to report
    code, out, _ = analyze(str(tmp_path), "-A")
    assert (code, out) == (0, "")
    code, out, _ = analyze(str(tmp_path), "-R", "-A")
    assert code == 7
    assert out.splitlines() == [
        f'Error [IST0101] (VirtualService ns/r {tmp_path / "sub" / "vs.yaml"}:11) Referenced '
        f'host+subset in destinationrule not found: "reviews+v1"']  # the gateway from the List counts
    code, out, _ = analyze("-", "-A", stdin=VS)
    assert code == 7 and "(VirtualService ns/r -:11)" in out
    assert "Referenced gateway not found" in out


@pytest.mark.parametrize("text, code, message", [
    ("a: [\n", 6, "bad.yaml:2: invalid YAML"),
    ("kind: Service\nmetadata: {name: x}\n", 6, "bad.yaml:1: the object has no apiVersion"),
    ("- just\n- a list\n", 6, "bad.yaml:1: not a Kubernetes object"),
    ("apiVersion: v1\nkind: Service\nmetadata: {}\n", 6, "bad.yaml:1: Service has no metadata.name"),
], ids=["invalid-yaml", "no-apiVersion", "not-a-mapping", "no-name"])
def test_bad_input_is_one_line_and_exit_6(tmp_path, text, code, message):
    f = tmp_path / "bad.yaml"
    f.write_text(VS + "---\n" + text)
    shift = VS.count("\n") + 1
    got, out, err = analyze(str(f))
    assert got == code
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    path, line = message.split(":")[0], int(message.split(":")[1])
    assert lines[0].startswith(f"error: {tmp_path / path}:{line + shift}: "
                               f"{message.split(': ', 1)[1]}"), err


def test_a_missing_file_exits_3(tmp_path):
    code, out, err = analyze(str(tmp_path / "nope.yaml"))
    assert code == 3
    assert err == f"error: {tmp_path / 'nope.yaml'}: no such file or directory\n"


def test_an_unknown_istio_kind_is_bad_input_and_a_known_one_is_skipped(tmp_path):
    f = tmp_path / "typo.yaml"
    f.write_text(VS + "---\n" + VS.replace("kind: VirtualService", "kind: VirtualSevice"))
    code, out, err = analyze(str(f), "-A")
    assert (code, out) == (6, "")
    assert err == (f"error: {f}:13: networking.istio.io/v1 has no kind 'VirtualSevice' (did you "
                   f"mean 'VirtualService'?)\n")
    f.write_text(VS.replace("kind: VirtualService", "kind: Sidecar") + "---\n"
                 + VS.replace("name: r", "name: q").replace("apiVersion: networking.istio.io/v1",
                                                            "apiVersion: apps/v1"))
    assert analyze(str(f), "-A") == (0, "", f"warning: {f}:13: VirtualService with apiVersion "
                                            f"apps/v1 is not a kind analyze reads; skipped\n"
                                            f"\u2714 No validation issues found when analyzing "
                                            f"{f}.\n")


def test_json_and_yaml_output():
    code, out, _ = analyze(DEFAULT, "-n", "istioinaction", "-o", "json")
    assert code == 7
    data = json.loads(out)
    assert data[0] == {
        "code": "IST0101",
        "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/"
                            "?ref=istioctl-analyze",
        "level": "Error",
        "message": 'Referenced host+subset in destinationrule not found: '
                   '"catalog.istioinaction.svc.cluster.local+version-v1"',
        "origin": "VirtualService istioinaction/catalog-v1-v2",
        "reference": f"{DEFAULT}:{V1_LINE}"}
    code, out, _ = analyze(DEFAULT, "-n", "istioinaction", "-o", "yaml")
    assert yaml.safe_load(out) == data
    code, out, _ = analyze(FIX, "-o", "json")
    assert (code, json.loads(out)) == (0, [])


def test_thresholds(tmp_path):
    f = tmp_path / "gw.yaml"
    f.write_text(VS.replace("subset: v1", "port: {number: 80}") + """---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [other.example.com]}]
""")
    code, out, _ = analyze(str(f), "-A")  # IST0132 is a Warning: shown, not a failure
    assert code == 0 and out.startswith("Warning [IST0132]")
    assert analyze(str(f), "-A", "--failure-threshold", "Warning")[0] == 7
    code, out, err = analyze(str(f), "-A", "--output-threshold", "Error")
    assert (code, out) == (0, "")
    assert "No validation issues found" in err
    code, out, err = analyze(str(f), "-A", "--output-threshold", "Error",
                             "--failure-threshold", "warning")
    assert (code, out) == (7, "")  # the failure threshold counts what is not shown too
    code, _, err = analyze(str(f), "--output-threshold", "Severe")
    assert code == 2 and "invalid level 'Severe'" in err


def test_suppress_flag_and_annotation(tmp_path):
    f = tmp_path / "vs.yaml"
    f.write_text(VS)
    code, out, _ = analyze(str(f), "-A", "--suppress", "IST0101=VirtualService ns/r")
    assert "IST0101" not in out and "IST0132" in out and code == 0
    code, out, _ = analyze(str(f), "-A", "-S", "IST0101=VirtualService *.ns", "-S",
                           "IST0132=VirtualService r.ns")
    assert (code, out) == (0, "")
    code, out, _ = analyze(str(f), "-A", "-S", "IST0101=VirtualService *.other")
    assert code == 7
    annotated = VS.replace("  namespace: ns\n", "  namespace: ns\n  annotations:\n"
                                                "    galley.istio.io/analyze-suppress: "
                                                "IST0132,IST0101\n")
    f.write_text(annotated)
    assert analyze(str(f), "-A")[:2] == (0, "")
    code, _, err = analyze(str(f), "-S", "IST0101")
    assert code == 2 and "invalid suppression 'IST0101'" in err
    code, _, err = analyze(str(f), "-S", "IST9999=Pod x")
    assert code == 0 and "IST9999 is not a message code" in err


def test_use_kube_false_needs_files():
    code, _, err = analyze()
    assert code == 2 and "--use-kube=false analyzes files" in err


def test_an_unreachable_cluster_is_one_line_and_exit_5(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}))
    out, err = io.StringIO(), io.StringIO()
    code = main(["--kubeconfig", str(kubeconfig), "-n", "team"], stdout=out, stderr=err)
    assert code == 5 and out.getvalue() == ""
    assert err.getvalue().startswith("error: cannot reach the API server http://127.0.0.1:9")
    assert len(err.getvalue().splitlines()) == 1
