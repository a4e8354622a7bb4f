"""Golden tests for the sync writers (table / wide / json / yaml, --verify findings, --diff),
built from real payloads captured from the sandbox. Regenerate with `pytest --update-golden`."""

from __future__ import annotations

import io

import pytest

from kubectl_mesh.sync import diff
from kubectl_mesh.sync.command import write_result
from kubectl_mesh.sync.verify import envoy_state, proxy_findings

from .cases import GOLDEN, load, now_after, proxies

TABLE_CASES = [
    ("synced_short", "syncz_synced.json", "short"),
    ("stale_short", "syncz_stale.json", "short"),
    ("stale_wide", "syncz_stale.json", "wide"),
    ("cds_error_short", "syncz_error.json", "short"),
    ("cds_error_json", "syncz_error.json", "json"),
    ("rds_error_yaml", "syncz_rds_error.json", "yaml"),
]


@pytest.mark.parametrize("case,payload,fmt", TABLE_CASES, ids=[c[0] for c in TABLE_CASES])
def test_sync_table(golden, case, payload, fmt):
    ps = proxies(payload)
    out, err = io.StringIO(), io.StringIO()
    write_result(out, err, fmt, ps, None, now_after(ps))
    golden(GOLDEN / case / "expected.txt", out.getvalue())
    golden(GOLDEN / case / "stderr.txt", err.getvalue())


def _rds_findings():
    ps = proxies("syncz_rds_error.json")
    gw = next(p for p in ps if p.name.startswith("istio-ingressgateway"))
    state = envoy_state(load("rds_nack_envoy_stats.json"), load("rds_nack_envoy_listeners.json"))
    return ps, proxy_findings(gw.name, gw, state)


@pytest.mark.parametrize("fmt", ["short", "json"])
def test_verify_findings(golden, fmt):
    ps, findings = _rds_findings()
    out, err = io.StringIO(), io.StringIO()
    write_result(out, err, fmt, ps, findings, now_after(ps))
    golden(GOLDEN / f"verify_rds_nack_{fmt}" / "expected.txt", out.getvalue())


def test_diff_of_nacked_proxy(golden):
    diffs = diff.compare(load("nack_istiod_dump.json"), load("nack_envoy_dump.json"))
    golden(GOLDEN / "diff_cds_nack" / "expected.txt", diff.render(diffs))


def test_diff_of_synced_proxy_matches(golden):
    diffs = diff.compare(load("synced_istiod_dump.json"), load("synced_envoy_dump.json"))
    text = diff.render(diffs)
    assert text == "Clusters Match\nListeners Match\nRoutes Match\n"
    golden(GOLDEN / "diff_synced" / "expected.txt", text)


def _sections(diffs):
    return [(d.section, d.istiod_count, d.envoy_count, d.match) for d in diffs]


def test_diff_reads_istiods_camel_case_dump():
    """istiod writes `/debug/config_dump` through protojson (camelCase keys): every item of
    the real dump is read, and matches the same proxy's Envoy-side dump."""
    diffs = diff.compare(load("istio/details_pilot_side.json"),
                         load("istio/details_envoy_side.json"))
    assert _sections(diffs) == [("Clusters", 1, 1, True), ("Listeners", 2, 2, True),
                                ("Routes", 1, 1, True)]


def test_diff_of_real_dumps_that_differ(golden):
    diffs = diff.compare(load("istio/details_pilot_side.json"),
                         load("istio/details_envoy_side_diff.json"))
    assert _sections(diffs) == [("Clusters", 1, 1, False), ("Listeners", 2, 2, False),
                                ("Routes", 1, 1, False)]
    golden(GOLDEN / "diff_real_details" / "expected.txt", diff.render(diffs))
