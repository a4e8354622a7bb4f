"""`main([...])` with injected streams: --file, flag clashes, exit codes."""

from __future__ import annotations

import io
import json

import pytest

from kubectl_mesh.cli.sync import main
from kubectl_mesh.errors import ExitCode

from .cases import DATA


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_file_synced_exits_0():
    code, out, _ = run("--file", str(DATA / "syncz_synced.json"))
    assert code == ExitCode.OK and out.count("SYNCED (") == 16


def test_file_error_exits_7_with_nack_note():
    code, out, err = run("--file", str(DATA / "syncz_error.json"), "-n", "istio-system")
    assert code == ExitCode.FINDINGS
    assert out.splitlines()[1].startswith("istio-ingressgateway") and len(out.splitlines()) == 2
    assert "rejected CDS (NACK): Error adding/updating cluster(s)" in err
    assert "1 of 1 proxies not SYNCED" in err


def test_file_json_target():
    code, out, _ = run("--file", str(DATA / "syncz_stale.json"), "catalog-5c99bc2986-e58ef",
                       "-o", "json")
    data = json.loads(out)
    assert code == 0 and [p["name"] for p in data] == ["catalog-5c99bc2986-e58ef.istioinaction"]


@pytest.mark.parametrize("argv,needle", [
    (["-A", "-n", "x"], "-n NS or -A"),
    (["deploy/x", "-l", "a=b"], "not both"),
    (["--diff", "--wait", "x"], "--diff compares once"),
    (["--file", "x.json", "--verify"], "need a cluster"),
    (["--plaintext", "--insecure"], "--plaintext uses no TLS"),
    (["--xds-address", "istiod:15012", "--revision", "canary"], "give one of them"),
    (["--xds-address", "istiod"], "is not HOST:PORT"),
    (["--xds-address", "istiod:99999"], "is not HOST:PORT"),
], ids=["A-and-n", "target-and-selector", "diff-wait", "file-verify", "plaintext-insecure",
        "address-revision", "address-no-port", "address-bad-port"])
def test_usage_errors(argv, needle):
    code, _, err = run(*argv)
    assert code == ExitCode.USAGE and needle in err


def test_control_plane_flags_make_reach_options():
    from kubectl_mesh.cli.sync import build_parser, options_from_args
    args = build_parser("kubectl mesh sync").parse_args(
        ["--xds-address", "[::1]:15012", "--authority", "istiod.x.svc", "--insecure"])
    reach = options_from_args(args).reach
    assert (reach.xds_address, reach.authority, reach.insecure, reach.plaintext) == (
        "[::1]:15012", "istiod.x.svc", True, False)
    from kubectl_mesh.sync.reach import split_address
    assert split_address(reach.xds_address) == ("::1", 15012)


def test_verify_and_diff_are_exclusive():
    code, _, err = run("--verify", "--diff", "x")
    assert code == ExitCode.USAGE and "not allowed with" in err


def test_bad_file_is_bad_input(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    assert run("--file", str(bad))[0] == ExitCode.BAD_INPUT
    bad.write_text('{"istiod-a": {"oops": 1}}')
    assert run("--file", str(bad))[0] == ExitCode.BAD_INPUT
