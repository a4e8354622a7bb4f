"""Parser tests over REAL Envoy 1.40 output (tests/accesslog/data, regenerate with
`python -m tests.accesslog.generate_fixtures`), plus prefixes, malformed and truncated lines."""

from __future__ import annotations

import io
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kubectl_mesh.accesslog import FIELDS, ParseStats, parse_lines, parse_text

DATA = Path(__file__).parent / "data"
FORMATS = ("text", "json")

# path (+ method) → (code, flags, details) as Envoy 1.40 wrote them (see generate_fixtures).
EXPECTED = [
    ("GET", "/ok?page=2", 200, (), "via_upstream"),
    ("GET", "/ok", 200, (), "via_upstream"),
    ("GET", "/app-error", 503, (), "via_upstream"),
    ("GET", "/slow-timeout", 504, ("UT",), "response_timeout"),
    ("GET", "/unhealthy", 503, ("UH",), "no_healthy_upstream"),
    ("GET", "/refused", 503, ("UF",), None),
    ("GET", "/refused-retry", 503, ("URX", "UF"), None),
    ("GET", "/no-cluster", 503, ("NC",), "cluster_not_found"),
    ("POST", "/ok", 200, (), "via_upstream"),
    ("GET", "/ok", 404, ("NR",), "route_not_found"),
    ("GET", "/disconnect", 0, ("DC",), "downstream_remote_disconnect"),
]


def load(fmt: str, prefix: str = "") -> tuple[list, ParseStats]:
    stats = ParseStats()
    with open(DATA / f"envoy-1.40-{fmt}.log") as f:
        lines = (prefix + line for line in f)
        return list(parse_lines(lines, stats)), stats


@pytest.mark.parametrize("fmt", FORMATS)
def test_real_outcomes(fmt):
    records, stats = load(fmt)
    got = [(r.method, r.path, r.response_code, r.response_flags) for r in records]
    assert got == [e[:4] for e in EXPECTED]
    for record, (_, _, _, _, details) in zip(records, EXPECTED):
        if details is not None:
            assert record.response_code_details == details
    assert stats.records == 11 and stats.malformed == 0
    assert stats.skipped > 50  # Envoy's own start-up/shutdown lines were recognised
    assert stats.lines == stats.records + stats.skipped + stats.malformed


@pytest.mark.parametrize("fmt", FORMATS)
def test_real_field_values(fmt):
    records, _ = load(fmt)
    by_path = {(r.method, r.path, r.response_code): r for r in records}
    ok = by_path[("GET", "/ok?page=2", 200)]
    assert ok.x_forwarded_for == "203.0.113.7"
    assert ok.user_agent == "fixture-client/1.0 (kubectl-mesh tests)"
    assert ok.authority == "svc.test" and ok.protocol == "HTTP/1.1"
    assert ok.upstream_cluster == "outbound|80||ok.test.svc.cluster.local"
    assert ok.upstream_host.startswith("127.0.80.2:") and ok.upstream_ip == "127.0.80.2"
    assert ok.upstream_local_address.startswith("127.0.80.1:")
    assert ok.route_name == "ok" and ok.requested_server_name is None
    assert isinstance(ok.upstream_service_time, int) and ok.connection_termination_details is None
    assert len(ok.request_id) == 36
    assert ok.start_time.tzinfo is not None and ok.start_time.year >= 2025

    ut = by_path[("GET", "/slow-timeout", 504)]
    assert ut.upstream_service_time is None  # `-`: the upstream never answered
    assert 195 <= ut.duration < 1000  # the 0.2 s route timeout, not the app's 1 s sleep
    uh = by_path[("GET", "/unhealthy", 503)]
    assert uh.upstream_host is None and uh.upstream_local_address is None
    uf = by_path[("GET", "/refused", 503)]
    assert uf.upstream_transport_failure_reason == "delayed_connect_error:_Connection_refused"
    nr = by_path[("GET", "/ok", 404)]
    assert nr.route_name is None and nr.upstream_cluster is None and nr.authority == "nohost.test"
    dc = by_path[("GET", "/disconnect", 0)]
    assert dc.is_error and dc.bytes_sent == 0 and dc.downstream_remote_address.startswith("127.0.80.9:")
    post = by_path[("POST", "/ok", 200)]
    assert post.bytes_received == 100
    assert post.user_agent == 'odd "quoted" agent'  # quotes inside a TEXT value: regex fallback


def test_text_and_json_agree_on_everything_but_times():
    text, _ = load("text")
    json_, _ = load("json")
    variable = {"start_time", "request_id", "duration", "upstream_service_time",
                "upstream_host", "upstream_local_address", "downstream_local_address",
                "downstream_remote_address"}
    for a, b in zip(text, json_):
        for name in set(FIELDS) - variable:
            assert getattr(a, name) == getattr(b, name), name


@pytest.mark.parametrize("prefix", ["2026-11-26T03:22:27.520123456Z ",
                                    "2026-11-26T03:22:27.520123456Z stdout F "],
                         ids=["kubectl-timestamps", "cri-file"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_kubernetes_timestamp_prefix(fmt, prefix):
    records, stats = load(fmt, prefix)
    assert [(r.path, r.response_code) for r in records] == [(e[1], e[2]) for e in EXPECTED]
    assert stats.malformed == 0


TEXT_LINE = ('[2026-11-26T03:22:27.520Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 '
             '3 2 "-" "curl/8.5.0" "a4f6e2c1-1111-2222-3333-444455556666" "httpbin:8000" '
             '"10.244.0.12:8080" outbound|8000||httpbin.default.svc.cluster.local '
             '10.244.0.11:46214 10.96.12.34:8000 10.244.0.11:50524 - default')


def test_text_line_all_fields():
    r = parse_text(TEXT_LINE, pod="sleep-1")
    assert r.start_time == datetime(2026, 11, 26, 3, 22, 27, 520000, tzinfo=timezone.utc)
    assert (r.method, r.path, r.protocol, r.response_code) == ("GET", "/status/418", "HTTP/1.1", 418)
    assert (r.bytes_received, r.bytes_sent, r.duration, r.upstream_service_time) == (0, 135, 3, 2)
    assert r.response_flags == () and r.upstream_transport_failure_reason is None
    assert r.downstream_local_address == "10.96.12.34:8000" and r.route_name == "default"
    assert r.pod == "sleep-1"
    assert r.to_dict()["start_time"] == "2026-11-26T03:22:27.520Z"


def test_tcp_line_dashes_become_none():
    line = ('[2026-11-26T03:22:27.520Z] "- - -" 0 - - - "-" 1200 3400 5012 - "-" "-" "-" "-" '
            '"10.244.0.20:3306" outbound|3306||mysql.db.svc.cluster.local 10.244.0.11:40000 '
            '10.96.0.5:3306 10.244.0.11:39999 - -')
    r = parse_text(line)
    assert (r.method, r.path, r.protocol, r.authority, r.route_name) == (None,) * 5
    assert (r.response_code, r.bytes_sent, r.duration) == (0, 3400, 5012)


def test_value_starting_with_dash_is_kept():
    r = parse_text(TEXT_LINE.replace('"curl/8.5.0"', '"-weird-agent"'))
    assert r.user_agent == "-weird-agent"


MALFORMED = {
    "truncated-text": TEXT_LINE[:120],
    "truncated-json": '{"start_time":"2026-11-26T03:22:27.520Z","method":"GET","respo',
    "json-bad-time": '{"start_time":"yesterday","response_code":200,"duration":1}',
    "json-bad-code": '{"start_time":"2026-11-26T03:22:27.520Z","response_code":"abc","duration":1}',
    "bad-time": TEXT_LINE.replace("2026-11-26T03:22:27.520Z", "not-a-time"),
    "no-zone": TEXT_LINE.replace("27.520Z", "27.520"),
    "code-not-number": TEXT_LINE.replace(" 418 ", " x18 "),
}
SKIPPED = {
    "envoy-default": "[2026-11-26 03:22:27.520][12][warning][config] gRPC config stream closed",
    "istio-format": "2026-11-26T03:22:27.520Z\twarning\tenvoy config\tstream closed\tthread=12",
    "agent-json": '{"level":"info","time":"2026-11-26T03:22:27.520Z","msg":"Readiness succeeded"}',
    "blank": "",
    "other": "some text an app printed",
}


@pytest.mark.parametrize("line", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_lines_are_counted_not_raised(line):
    stats = ParseStats()
    assert list(parse_lines([TEXT_LINE, line, TEXT_LINE], stats)) != []
    assert (stats.lines, stats.records, stats.malformed, stats.skipped) == (3, 2, 1, 0)
    assert stats.malformed_examples == [(2, line[:200])]


@pytest.mark.parametrize("line", SKIPPED.values(), ids=SKIPPED.keys())
def test_non_access_log_lines_are_skipped(line):
    stats = ParseStats()
    assert len(list(parse_lines([line, TEXT_LINE], stats))) == 1
    assert (stats.skipped, stats.malformed) == (1, 0)


def test_streaming_consumes_lazily_and_accepts_bytes():
    consumed = []

    def source():
        for i in range(1000):
            consumed.append(i)
            yield (TEXT_LINE + "\n").encode()

    it = parse_lines(source())
    first = next(it)
    assert first.response_code == 418 and len(consumed) == 1


def test_stats_to_dict_and_file_object():
    stats = ParseStats()
    list(parse_lines(io.StringIO(TEXT_LINE + "\n" + TEXT_LINE[:50] + "\n"), stats))
    assert stats.to_dict()["malformed"] == 1 and stats.to_dict()["records"] == 1


@pytest.mark.parametrize("line", [TEXT_LINE[:150] * 16, TEXT_LINE * 50,
                                  TEXT_LINE.replace('"curl/8.5.0"', '"a" "' * 30 + '"') + " x y"],
                         ids=["cut-repeated", "whole-repeated", "many-quotes"])
def test_lines_that_almost_match_fail_in_linear_time(line):
    """A few KB that nearly match the TEXT format: the regex must not backtrack through every
    way of splitting them into quoted values (this took minutes)."""
    stats = ParseStats()
    started = time.perf_counter()
    assert list(parse_lines([line] * 20, stats)) == []
    assert time.perf_counter() - started < 1.0
    assert stats.malformed == 20


def test_quoted_values_may_hold_quotes_and_spaces():
    r = parse_text(TEXT_LINE.replace('"curl/8.5.0"', '"odd "quoted" agent" x"'))
    assert r.user_agent == 'odd "quoted" agent" x' and r.authority == "httpbin:8000"


def test_malformed_examples_are_escaped_for_the_terminal():
    stats = ParseStats()
    list(parse_lines([TEXT_LINE[:100] + "\x1b[2J\r"], stats))
    assert stats.malformed_examples == [(1, TEXT_LINE[:100] + "\\x1b[2J")]


@pytest.mark.parametrize("line", [
    TEXT_LINE,  # the split fast path
    TEXT_LINE.replace('"curl/8.5.0"', '"odd "quoted" agent"'),  # the regex
    '{"start_time": "2026-11-26T03:22:27.520Z", "response_code": 200, "duration": 1}',
], ids=["text", "text-regex", "json"])
def test_records_hold_their_values_in_field_order(line):
    """Every parser path builds the record's __dict__ in FIELDS order, the pod last: the
    JSON writer of `accesslog --file` reads the values from it in that order."""
    (record,) = parse_lines([line], pod="p")
    assert tuple(vars(record)) == (*FIELDS, "pod")
