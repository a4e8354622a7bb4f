"""The cluster-side pieces of `kubectl mesh accesslog` without a cluster: the logs-API query,
IP → pod naming, the follow pipeline (re-ordering, streamed rows), the legend, and the
command on `--file` (a real Envoy 1.40 log)."""

from __future__ import annotations

import io
import json
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kubectl_mesh.accesslog import RecordFilter, parse_lines
from kubectl_mesh.accesslog.follow import Reorderer, RowWriter, follow
from kubectl_mesh.accesslog.flaglegend import legend_lines
from kubectl_mesh.accesslog.parser import ParseStats
from kubectl_mesh.accesslog.podnames import PodNames, cluster_namespace
from kubectl_mesh.accesslog.source import LogQuery
from kubectl_mesh.cli import accesslog
from kubectl_mesh.errors import ForbiddenError

REAL_LOG = Path(__file__).resolve().parent / "data" / "envoy-1.40-text.log"
T0 = datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)


def line(ms: int, code: int = 200, flags: str = "-", host: str = "10.0.0.7:3000",
         path: str = "/items") -> str:
    """An Istio TEXT access-log line starting `ms` milliseconds after T0."""
    t = (T0 + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[:-6] + "Z"
    return (f'[{t}] "GET {path} HTTP/1.1" {code} {flags} via_upstream - "-" 0 10 {ms % 900} - '
            f'"-" "curl/8" "id-{ms}" "catalog.istioinaction.io" "{host}" '
            f"outbound|80|v2|catalog.istioinaction.svc.cluster.local 10.0.0.2:4000 "
            f"10.0.0.2:8080 10.0.0.9:5000 - -")


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return accesslog.main(list(args), out, err), out.getvalue(), err.getvalue()


# ---- the logs API query ----------------------------------------------------------------------


@pytest.mark.parametrize("query, expected", [
    (LogQuery(), {"container": "istio-proxy", "timestamps": "true"}),
    (LogQuery(since_seconds=0.2, tail_lines=0, follow=True),
     {"container": "istio-proxy", "timestamps": "true", "follow": "true", "sinceSeconds": "1",
      "tailLines": "0"}),
    (LogQuery(since_seconds=600.5), {"container": "istio-proxy", "timestamps": "true",
                                     "sinceSeconds": "601"}),
], ids=["default", "follow-tail0-subsecond", "rounds-up"])
def test_log_query_params(query, expected):
    assert query.params() == expected


# ---- upstream IP → pod ---------------------------------------------------------------------


def pod(name, ns, phase="Running", deleting=False):
    meta = {"name": name, "namespace": ns}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-26T03:00:00Z"
    return {"metadata": meta, "status": {"phase": phase}}


class FakePods:
    """`list_pods(namespace, field_selector=)` over a fixed set; optionally forbids the
    cluster scope or everything."""

    def __init__(self, by_ip, forbid_cluster=False, forbid_all=False):
        self.by_ip, self.forbid_cluster, self.forbid_all = by_ip, forbid_cluster, forbid_all
        self.calls = []

    def __call__(self, namespace, field_selector=None):
        self.calls.append((namespace, field_selector))
        if self.forbid_all or (namespace is None and self.forbid_cluster):
            raise ForbiddenError("cannot list pods at the cluster scope")
        ip = field_selector.split("=", 1)[1]
        return [p for p in self.by_ip.get(ip, [])
                if namespace is None or p["metadata"]["namespace"] == namespace]


def test_pod_names_are_cached_and_prefer_the_running_pod():
    fake = FakePods({"10.0.0.7": [pod("old", "shop", phase="Succeeded"), pod("new", "shop")]})
    names = PodNames(fake, "default")
    assert names.lookup("10.0.0.7") == "new.shop"
    assert names.lookup("10.0.0.7") == "new.shop"
    assert names.lookup("10.9.9.9") is None
    assert fake.calls == [(None, "status.podIP=10.0.0.7"), (None, "status.podIP=10.9.9.9")]


def test_pod_names_fall_back_to_the_service_namespace_when_cluster_list_is_forbidden():
    fake = FakePods({"10.0.0.7": [pod("catalog-v2-a", "istioinaction")]}, forbid_cluster=True)
    err = io.StringIO()
    names = PodNames(fake, "istio-system", err)
    assert names.lookup("10.0.0.7", "istioinaction") == "catalog-v2-a.istioinaction"
    assert names.lookup("10.0.0.8", "istioinaction") is None
    # the cluster scope is asked once only; then the hint, then the default namespace
    assert [c[0] for c in fake.calls] == [None, "istioinaction", "istioinaction", "istio-system"]
    assert err.getvalue() == ""


def test_pod_names_warn_once_when_nothing_may_be_listed():
    err = io.StringIO()
    names = PodNames(FakePods({}, forbid_all=True), "shop", err)
    assert names.lookup("10.0.0.1") is None and names.lookup("10.0.0.2") is None
    assert err.getvalue().count("warning: cannot map upstream IPs to pods") == 1


def test_host_network_pods_sharing_an_ip_are_marked():
    fake = FakePods({"192.168.1.5": [pod("b", "kube-system"), pod("a", "kube-system")]})
    assert PodNames(fake, None).lookup("192.168.1.5") == "a.kube-system (+1 more)"


@pytest.mark.parametrize("cluster, ns", [
    ("outbound|80|version-v2|catalog.istioinaction.svc.cluster.local", "istioinaction"),
    ("inbound|3000||", None), ("PassthroughCluster", None), (None, None),
], ids=["outbound", "inbound", "passthrough", "none"])
def test_cluster_namespace(cluster, ns):
    assert cluster_namespace(cluster) == ns


# ---- follow: re-ordering and streamed rows ------------------------------------------------


def records(*lines_):
    return list(parse_lines(lines_))


def test_reorderer_releases_in_start_order_after_the_window():
    late, early = records(line(500), line(100))
    r = Reorderer(window=0.3)
    r.push(late, now=10.0)
    r.push(early, now=10.1)
    assert list(r.ready(10.2)) == []  # nothing has waited 0.3 s yet
    # `late` is due at 10.3 but never overtakes `early`, which started before it
    assert list(r.ready(10.35)) == []
    assert list(r.ready(10.4)) == [early, late]
    assert len(r) == 0


def test_the_default_window_outlasts_envoys_access_log_flush():
    """Envoy writes its access log every second under pilot-agent (--file-flush-interval-msec
    1000): one pod's line for an earlier request can arrive a whole second after another
    pod's line for a later one, and must still be printed first."""
    earlier, later = records(line(100), line(600))
    r = Reorderer()  # the default window
    r.push(later, now=10.7)  # the other pod flushed right after the request
    assert list(r.ready(11.6)) == []  # 0.9 s on, the first pod has not flushed yet
    r.push(earlier, now=11.7)  # flushed a full second after it was written
    assert list(r.drain()) == [earlier, later]


def test_reorderer_bounds_what_it_holds():
    r = Reorderer(window=100, max_pending=3)
    for rec in records(*(line(ms) for ms in (5, 1, 4, 2, 3))):
        r.push(rec, now=0.0)
    assert [x.start_time for x in r.ready(0.0)] == [T0 + timedelta(milliseconds=ms)
                                                    for ms in (1, 2)]
    assert len(r) == 3


def test_row_writer_streams_rows_whose_columns_only_grow():
    out = io.StringIO()
    w = RowWriter(out, "short", pod_width=5)
    short, long_ = records(line(1, path="/a"), line(2, path="/" + "x" * 40))
    w.write(short)
    first = out.getvalue()
    w.write(long_)
    w.write(short)
    header, row1, row2, row3 = out.getvalue().splitlines()
    assert out.getvalue().startswith(first)  # nothing already written is rewritten
    assert header.split() == ["TIME", "POD", "CODE", "FLAGS", "METHOD", "AUTHORITY", "PATH",
                              "DURATION", "UPSTREAM"]
    assert row1.index("10.0.0.7") < row3.index("10.0.0.7") == row2.index("10.0.0.7")
    assert row1.index("200") == header.index("CODE")


def test_row_writer_json_is_one_object_per_line():
    out = io.StringIO()
    w = RowWriter(out, "json")
    for rec in records(line(1, 504, "UT"), line(2)):
        w.write(rec)
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(r["response_code"], r["response_flags"]) for r in rows] == [(504, ["UT"]), (200, [])]


def test_follow_merges_pods_filters_and_reports_a_broken_stream():
    ended = []

    def broken():
        yield line(30, 504, "UT").encode()
        raise OSError("connection reset")

    sources = {"a": lambda: iter([line(10).encode(), b"[2026-11-26 03:00:00.000][1][info]"
                                                     b"[main] envoy says hi",
                                  line(40, 504, "UT").encode()]),
               "b": broken}
    stats = {"a": ParseStats(), "b": ParseStats()}
    out = io.StringIO()
    rows = follow(sources, RecordFilter.from_options(code="5xx"), RowWriter(out, "json"),
                  stats=stats, on_end=ended.append, window=0.05)
    got = [(r["pod"], r["request_id"]) for r in map(json.loads, out.getvalue().splitlines())]
    assert rows == 2 and got == [("b", "id-30"), ("a", "id-40")]
    assert (stats["a"].records, stats["a"].skipped) == (2, 1)
    assert sorted((e.pod, type(e.error).__name__ if e.error else None) for e in ended) == [
        ("a", None), ("b", "OSError")]


def test_follow_reads_pods_that_join_and_goes_on_while_the_watch_runs():
    """A pod joins after the only initial pod has ended: the follow is still running (the
    watch runs), reads the new pod, and ends once the watch and every pod have ended."""
    first_ended = threading.Event()
    ended = []

    def on_end(end):
        ended.append(end.pod)
        first_ended.set()

    def watch(join):
        assert first_ended.wait(5)
        join("b", lambda: iter([line(20, 503, "UH").encode()]))

    stats = {"a": ParseStats()}
    out = io.StringIO()
    rows = follow({"a": lambda: iter([line(10, 504, "UT").encode()])},
                  RecordFilter.from_options(code="5xx"), RowWriter(out, "json"), stats=stats,
                  on_end=on_end, window=0.05, watch=watch)
    got = [(r["pod"], r["response_code"]) for r in map(json.loads, out.getvalue().splitlines())]
    assert rows == 2 and got == [("a", 504), ("b", 503)]
    assert ended == ["a", "b"] and stats["b"].records == 1


def test_follow_closes_blocked_sources_on_ctrl_c():
    release = threading.Event()
    closed = []

    def blocked():
        release.wait(5)
        return iter(())

    def interrupt(record):
        raise KeyboardInterrupt

    writer = RowWriter(io.StringIO(), "short")
    writer.write = interrupt
    sources = {"a": lambda: iter([line(1).encode()]), "b": blocked}
    with pytest.raises(KeyboardInterrupt):
        follow(sources, RecordFilter(), writer, stats={"a": ParseStats(), "b": ParseStats()},
               close=lambda: (closed.append(True), release.set()), window=0.01)
    assert closed == [True]


# ---- the legend and --explain ----------------------------------------------------------


def test_legend_says_who_decided():
    lines = legend_lines(["UF", "UT", "DC", "FI", "UpstreamRequestTimeout"])
    assert [x.split()[0] for x in lines] == ["UF", "DC", "UT", "FI"]  # Envoy's order, once
    assert "decided by the application (upstream)" in lines[0]
    assert "decided by the client (downstream)" in lines[1]
    assert "decided by the proxy (Envoy)" in lines[2]
    assert "decided by configured policy" in lines[3]


# ---- the command on a file -------------------------------------------------------------


def test_file_table_with_legend_and_filters():
    code, out, err = run("--file", str(REAL_LOG), "--code", "5xx", "--flags", "UF,UH")
    assert code == 0, err
    table, legend = out.split("\n\nFLAGS:\n")
    rows = table.splitlines()[1:]
    assert [row.split()[2:4] for row in rows] == [["503", "UH"], ["503", "UF"],
                                                  ["503", "URX,UF"]]
    assert [x.split()[0] for x in legend.splitlines()] == ["UH", "UF", "URX"]


def test_file_by_code_json():
    code, out, _ = run("--file", str(REAL_LOG), "--by", "code", "-o", "json")
    groups = {g["key"]: g["count"] for g in json.loads(out)["groups"]}
    assert code == 0 and groups == {"200": 3, "503": 5, "504": 1, "404": 1, "0": 1}


def test_malformed_lines_are_counted_and_strict_fails_with_6(tmp_path):
    log = tmp_path / "proxy.log"
    log.write_text("\n".join([line(1), line(2)[:60], "Envoy says hi", line(3)]) + "\n")
    code, out, err = run("--file", str(log), "-o", "json")
    assert code == 0 and len(json.loads(out)) == 2
    assert "1 of 4 log lines could not be parsed" in err
    code, out, err = run("--file", str(log), "--strict")
    assert code == 6 and len(out.splitlines()) == 3  # the table is still written
    assert f"line 2: {line(2)[:60]}" in err and "error: 1 of 4 log lines" in err


def test_follow_a_file_from_stdin(monkeypatch):
    data = "\n".join(line(ms, 504 if ms % 2 else 200) for ms in (3, 1, 2)) + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data.encode())))
    code, out, err = run("--file", "-", "-f", "--code", "504")
    assert code == 0, err
    assert [r.split()[0] for r in out.splitlines()[1:]] == ["03:00:00.001", "03:00:00.003"]


@pytest.mark.parametrize("args, message", [
    (("--file", "x.log", "deploy/a"), "not both"),
    ((), "a target or --file is required"),
    (("--file", "x.log", "--by", "flag", "-f"), "cannot follow"),
    (("--file", "x.log", "--flags", ","), "names no response flag"),
    (("--file", "x.log", "--explain", "UT"), "--explain takes no target"),
    (("--file", "x.log", "--slower-than", "fast"), "invalid duration"),
], ids=["file-and-target", "nothing", "by-follow", "empty-flags", "explain-target",
        "bad-duration"])
def test_usage_errors(args, message):
    code, out, err = run(*args)
    assert code == 2 and out == "" and message in err


def test_the_cli_offers_every_group_key_of_the_library():
    from kubectl_mesh.accesslog import GROUP_KEYS
    assert accesslog.GROUP_KEYS == GROUP_KEYS


def test_missing_file_is_not_found():
    code, _, err = run("--file", "/nonexistent/proxy.log")
    assert code == 3 and "no such file" in err
