"""Golden tests for the proxy-status table; regenerate with
`pytest tests/syncstatus --update-golden` (never silently)."""

from __future__ import annotations

import difflib

import pytest

from .golden_cases import GOLDEN, render_case

CASES = sorted(p for p in GOLDEN.iterdir() if (p / "case.json").exists())


@pytest.mark.parametrize("case_dir", CASES, ids=[p.name for p in CASES])
def test_golden(case_dir, request):
    actual = render_case(case_dir)
    expected_file = case_dir / "expected.txt"
    if request.config.getoption("--update-golden"):
        expected_file.write_text(actual)
        return
    assert expected_file.exists(), f"no golden file; run pytest --update-golden for {case_dir.name}"
    expected = expected_file.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            "expected", "actual"))
        pytest.fail(f"{case_dir.name} differs from golden:\n{diff}")
