"""Flag checks happen before any cluster access (a kubeconfig that does not exist proves it)."""

from __future__ import annotations

import io

import pytest

from kubectl_mesh.cli import loglevel


@pytest.mark.parametrize("argv, message", [
    (["deploy/x", "--level", "loud"], "error: unknown log level 'loud'"),
    (["deploy/x", "--level", "http:debug,router"], "error: invalid --level part 'router'"),
    (["deploy/x", "--for", "5m"], "error: --for needs --level or --reset"),
    (["deploy/x", "--level", "debug", "-o", "json"], "error: -o is for listing levels"),
    (["--level", "debug"], "error: a target is required"),
    (["deploy/x", "--for", "soon", "--level", "debug"], "invalid duration 'soon'"),
    (["deploy/x", "--restore-abandoned", "--for", "5m"], "error: --for needs --level or --reset"),
    (["deploy/x", "--restore-abandoned", "-o", "json"], "error: -o is for listing levels"),
    (["deploy/x", "--restore-abandoned", "--reset"], "not allowed with argument"),
], ids=["bad-level", "bad-part", "for-alone", "output-on-set", "no-target", "bad-duration",
        "for-with-restore-abandoned", "output-on-restore-abandoned", "restore-and-reset"])
def test_usage_errors_exit_2_without_touching_the_cluster(argv, message, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    code = loglevel.main(argv + ["--kubeconfig", str(tmp_path / "missing")], stdout=out, stderr=err)
    assert code == 2 and out.getvalue() == ""
    assert message in err.getvalue()


def test_level_and_reset_are_exclusive():
    err = io.StringIO()
    assert loglevel.main(["x", "--level", "debug", "--reset"], stdout=io.StringIO(), stderr=err) == 2
    assert "not allowed with argument" in err.getvalue()
