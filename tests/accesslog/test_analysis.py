"""Flags in words, filters, grouping, percentiles, merging pods, rendering."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from kubectl_mesh.accesslog import (
    FLAGS, RecordFilter, explain, group_records, legend, lookup, merge_by_time, parse_lines,
    percentile, write_groups, write_requests,
)
from kubectl_mesh.accesslog.record import AccessLogRecord
from kubectl_mesh.errors import UsageError

DATA = Path(__file__).parent / "data"
T0 = datetime(2026, 11, 26, 3, 0, 0, tzinfo=timezone.utc)
ISTIO_FLAGS = ("UH UF UO NR URX NC DT DC LH UT LR UR UC DI FI RL UAEX RLSE IH SI DPE UPE UMSDR "
               "OM DF DO").split()


def rec(code=200, flags=(), duration=10, host="10.0.0.1:8080", cluster="outbound|80||a",
        route="default", authority="catalog.istioinaction:80", path="/items", t=0, pod=None):
    return AccessLogRecord(
        start_time=T0 + timedelta(milliseconds=t), method="GET", path=path, protocol="HTTP/1.1",
        response_code=code, response_flags=tuple(flags), response_code_details=None,
        connection_termination_details=None, upstream_transport_failure_reason=None,
        bytes_received=0, bytes_sent=0, duration=duration, upstream_service_time=None,
        x_forwarded_for=None, user_agent=None, request_id=None, authority=authority,
        upstream_host=host, upstream_cluster=cluster, upstream_local_address=None,
        downstream_local_address=None, downstream_remote_address=None,
        requested_server_name=None, route_name=route, pod=pod)


def real_records():
    with open(DATA / "envoy-1.40-text.log") as f:
        return list(parse_lines(f))


# --- flags -------------------------------------------------------------------------------

def test_every_istio_flag_is_explained_with_a_side():
    for flag in ISTIO_FLAGS:
        assert flag in FLAGS, flag
        assert lookup(flag).side in ("proxy", "upstream", "downstream", "policy")
        assert explain(flag).startswith(f"{flag} – ")


def test_ut_says_the_proxy_decided():
    text = explain("UT")
    assert text.startswith("UT – upstream request timeout: the proxy gave up waiting")
    assert "application" in text and lookup("UT").side == "proxy"
    assert lookup("DC").side == "downstream" and lookup("UF").side == "upstream"


@pytest.mark.parametrize("name,short", [("UpstreamRequestTimeout", "UT"),
                                        ("NoHealthyUpstream", "UH"), ("ut", "UT"),
                                        ("UpstreamRetryLimitExceeded", "URX")])
def test_long_names(name, short):
    assert lookup(name).short == short


def test_unknown_flag_is_shown_as_unknown():
    assert lookup("ZZZ").side == "unknown"
    assert explain("ZZZ") == "ZZZ – unknown flag: not a response flag this tool knows (newer Envoy?)"


def test_legend_lists_each_present_flag_once_in_table_order():
    lines = legend([("URX", "UF"), ("UT",), ("UF",), ("NEW",), ()])
    assert [line.split(" ")[0] for line in lines] == ["UF", "URX", "UT", "NEW"]


# --- filters -----------------------------------------------------------------------------

@pytest.mark.parametrize("spec,code,keep", [
    ("5xx", 503, True), ("5xx", 404, False), ("504", 504, True), ("504", 503, False),
    ("4xx,503", 404, True), ("4xx|503", 503, True), ("4xx,503", 500, False), ("0", 0, True),
    ("5xx", 0, False),
], ids=lambda v: str(v))
def test_code_filter(spec, code, keep):
    assert RecordFilter.from_options(code=spec).matches(rec(code=code)) is keep


@pytest.mark.parametrize("bad", ["5x", "999", "abc", ",", "6xx"])
def test_bad_code_is_usage_error(bad):
    with pytest.raises(UsageError):
        RecordFilter.from_options(code=bad)


@pytest.mark.parametrize("spec,duration,keep", [
    ("500ms", 501, True), ("500ms", 500, False), ("1s", 1001, True), ("1.5s", 1400, False),
    ("250", 300, True), ("2m", 120_001, True),
])
def test_slower_than(spec, duration, keep):
    assert RecordFilter.from_options(slower_than=spec).matches(rec(duration=duration)) is keep


def test_bad_duration_is_usage_error():
    with pytest.raises(UsageError, match="invalid duration"):
        RecordFilter.from_options(slower_than="fast")


def test_flags_any_of_and_long_names():
    f = RecordFilter.from_options(flags="UT,UH")
    assert f.matches(rec(flags=("UT",))) and f.matches(rec(flags=("URX", "UH")))
    assert not f.matches(rec(flags=("UF",))) and not f.matches(rec())
    assert RecordFilter.from_options(flags="UpstreamRequestTimeout").matches(rec(flags=("UT",)))


@pytest.mark.parametrize("pattern,authority,keep", [
    ("catalog", "catalog.istioinaction:80", True),  # substring
    ("CATALOG", "catalog.istioinaction:80", True),  # case-insensitive
    ("talog.ist", "catalog.istioinaction:80", True),
    ("webapp", "catalog.istioinaction:80", False),
    ("*.istioinaction:80", "catalog.istioinaction:80", True),  # glob: whole authority
    ("catalog*", "catalog.istioinaction:80", True),
    ("*.istioinaction", "catalog.istioinaction:80", False),  # glob is anchored
])
def test_host_filter(pattern, authority, keep):
    assert RecordFilter.from_options(host=pattern).matches(rec(authority=authority)) is keep


def test_path_prefix_and_combined_filters():
    f = RecordFilter.from_options(path="/items", code="5xx")
    assert f.matches(rec(code=503, path="/items/3?x=1"))
    assert not f.matches(rec(code=503, path="/cart"))
    assert not f.matches(rec(code=200, path="/items"))
    assert RecordFilter().matches(rec())
    assert list(f.apply([rec(code=503), rec(code=200)])) == [rec(code=503)]


def test_filters_on_real_records():
    records = real_records()
    f = RecordFilter.from_options(flags="UF")
    assert [r.path for r in f.apply(records)] == ["/refused", "/refused-retry"]
    assert len(list(RecordFilter.from_options(code="5xx").apply(records))) == 6
    assert [r.path for r in RecordFilter.from_options(slower_than="150ms").apply(records)] == [
        "/slow-timeout", "/disconnect"]


# --- grouping, percentiles, merging ------------------------------------------------------

def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99
    assert percentile([5], 99) == 5 and percentile([1, 2], 50) == 1
    assert percentile([1, 2, 3, 1000], 99) == 1000 and percentile([], 50) is None


def test_group_by_upstream_with_pod_names():
    records = [rec(duration=d, host="10.0.0.1:8080") for d in (10, 20, 30)]
    records += [rec(code=503, flags=("UF",), host="10.0.0.2:8080", duration=1),
                rec(code=0, flags=("DC",), host="10.0.0.2:8080", duration=5),
                rec(code=200, host="10.0.0.2:8080", duration=3),
                rec(code=503, flags=("UH",), host=None, duration=0)]
    rows = group_records(records, "upstream",
                         pod_of={"10.0.0.1": "catalog-a", "10.0.0.2": "catalog-b"}.get)
    assert [(r.label, r.key, r.count, r.errors) for r in rows] == [
        ("catalog-a", "10.0.0.1:8080", 3, 0), ("catalog-b", "10.0.0.2:8080", 3, 2),
        ("-", "-", 1, 1)]
    assert (rows[0].p50_ms, rows[0].p99_ms) == (20, 30)
    assert rows[1].error_rate == pytest.approx(2 / 3)
    assert dict(rows[1].flags) == {"UF": 1, "DC": 1}


def test_group_by_flag_counts_multi_flag_requests_in_each():
    rows = group_records(real_records(), "flag")
    counts = {r.key: r.count for r in rows}
    assert counts == {"-": 4, "UF": 2, "URX": 1, "UT": 1, "UH": 1, "NC": 1, "NR": 1, "DC": 1}
    assert rows[0].key == "-"


def test_group_by_code_cluster_route_and_bad_key():
    records = real_records()
    by_code = {r.key: (r.count, r.errors) for r in group_records(records, "code")}
    assert by_code["503"] == (5, 5) and by_code["0"] == (1, 1) and by_code["404"] == (1, 0)
    clusters = {r.key: r.count for r in group_records(records, "cluster")}
    assert clusters["outbound|80||dead.test.svc.cluster.local"] == 2 and clusters["-"] == 2
    assert {r.key for r in group_records(records, "route")} >= {"ok", "refused-retry", "-"}
    with pytest.raises(UsageError, match="allowed: upstream"):
        group_records(records, "pod")


def test_merge_by_time_across_pods():
    a = [rec(t=0), rec(t=20), rec(t=40)]
    b = [rec(t=10, pod="ignored"), rec(t=20), rec(t=50)]
    merged = list(merge_by_time({"pod-b": iter(b), "pod-a": iter(a)}))
    assert [(r.pod, (r.start_time - T0).total_seconds() * 1000) for r in merged] == [
        ("pod-a", 0), ("pod-b", 10), ("pod-a", 20), ("pod-b", 20), ("pod-a", 40), ("pod-b", 50)]


def test_merge_is_lazy():
    def endless(pod):
        i = 0
        while True:
            yield rec(t=i, pod=pod)
            i += 1

    it = merge_by_time({"a": endless("a"), "b": endless("b")})
    assert [next(it).pod for _ in range(4)] == ["a", "b", "a", "b"]


# --- rendering ---------------------------------------------------------------------------

def test_request_table_and_legend():
    records = [dataclasses.replace(r, pod="catalog-a") for r in real_records()]
    out = io.StringIO()
    write_requests(out, "short", records, show_legend=True)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["TIME", "POD", "CODE", "FLAGS", "METHOD", "AUTHORITY", "PATH",
                                "DURATION", "UPSTREAM"]
    ut = next(line for line in lines if "/slow-timeout" in line).split()
    assert ut[1:5] == ["catalog-a", "504", "UT", "GET"] and ut[7].endswith("ms")
    assert "URX,UF" in out.getvalue()
    legend_at = lines.index("FLAGS:")
    assert any(line.startswith("  UT – upstream request timeout") for line in lines[legend_at:])


def test_request_wide_and_json():
    records = real_records()[:2]
    out = io.StringIO()
    write_requests(out, "wide", records)
    assert out.getvalue().splitlines()[0].split()[-4:] == ["CLUSTER", "ROUTE", "REQUEST", "ID"]
    out = io.StringIO()
    write_requests(out, "json", records, show_legend=True)
    data = json.loads(out.getvalue())  # no legend text mixed into data
    assert data[0]["path"] == "/ok?page=2" and data[0]["response_flags"] == []
    assert data[0]["start_time"].endswith("Z")


def test_group_table_and_yaml():
    rows = group_records(real_records(), "cluster")
    out = io.StringIO()
    write_groups(out, "short", "cluster", rows)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["CLUSTER", "COUNT", "ERRORS", "ERR%", "P50", "P99", "FLAGS"]
    dead = next(line for line in lines if line.startswith("outbound|80||dead")).split()
    assert dead[1:4] == ["2", "2", "100.0"] and dead[6] == "UF,URX"
    out = io.StringIO()
    write_groups(out, "yaml", "cluster", rows)
    data = yaml.safe_load(out.getvalue())
    assert data["by"] == "cluster" and data["groups"][0]["count"] == 4
