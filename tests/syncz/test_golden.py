"""Golden tests for the proxy-status table; regenerate with
`pytest tests/syncz --update-golden` (never silently)."""

from __future__ import annotations

import pytest

from .golden_cases import GOLDEN, render_case

CASES = sorted(p for p in GOLDEN.iterdir() if (p / "case.json").exists())


@pytest.mark.parametrize("case_dir", CASES, ids=[p.name for p in CASES])
def test_golden(case_dir, golden):
    golden(case_dir / "expected.txt", render_case(case_dir))
