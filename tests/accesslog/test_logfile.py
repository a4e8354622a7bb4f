"""`accesslog --file` on a regular file (parsed once, rendered requests spilled to an unlinked
temporary file, never held) writes exactly what the collecting path writes for the same log
from stdin, in every format, in start-time order also when the log is not."""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path

import pytest

from kubectl_mesh.accesslog import logfile
from kubectl_mesh.cli import accesslog

LOG = Path(__file__).parent / "data" / "envoy-1.40-text.log"
JSON_LOG = Path(__file__).parent / "data" / "envoy-1.40-json.log"


def run(argv, stdin: bytes | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        code = accesslog.main(argv, stdout=out, stderr=err)
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


def shuffled_log(tmp_path, shuffle: bool = True) -> Path:
    """Both real logs, lines shuffled with a fixed seed (far from start-time order), or
    sorted by start time (the spill is then written straight through)."""
    lines = LOG.read_bytes().splitlines(keepends=True) + \
        JSON_LOG.read_bytes().splitlines(keepends=True)
    if shuffle:
        random.Random(7).shuffle(lines)
    else:
        collected = run(["--file", "-", "-o", "json"], stdin=b"".join(lines))[1]
        order = {r["request_id"]: i for i, r in enumerate(json.loads(collected))}
        lines = [line for line in lines if _request_id(line) in order]
        lines.sort(key=lambda line: order[_request_id(line)])
    path = tmp_path / "shuffled.log"
    path.write_bytes(b"".join(lines))
    return path


def _request_id(line: bytes) -> str | None:
    from kubectl_mesh.accesslog.parser import parse_lines
    records = list(parse_lines([line]))
    return records[0].request_id if records else None


@pytest.mark.parametrize("batch", [3, 4096], ids=["small-batches", "one-batch"])
@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in-order"])
@pytest.mark.parametrize("flags", [[], ["--code", "5xx"], ["--flags", "UT,UH"],
                                   ["--host", "nothing-matches"]],
                         ids=["all", "5xx", "flags", "none"])
@pytest.mark.parametrize("fmt", ["short", "wide", "json", "yaml"])
def test_file_output_equals_the_collected_output(tmp_path, monkeypatch, fmt, flags, shuffle,
                                                 batch):
    monkeypatch.setattr(logfile, "BATCH", batch)
    monkeypatch.setattr(logfile, "COPY", 64 if batch == 3 else 1 << 20)  # rows cut by blocks
    # out of order: each request read on its own, or cut out of the span a batch lies in
    monkeypatch.setattr(logfile, "WINDOW", 64 if batch == 3 else 8 << 20)
    path = shuffled_log(tmp_path, shuffle)
    streamed = run(["--file", str(path), "-o", fmt, *flags])
    collected = run(["--file", "-", "-o", fmt, *flags], stdin=path.read_bytes())
    assert streamed[0] == collected[0] == 0
    assert streamed[1] == collected[1]
    assert streamed[2] == collected[2]


def test_file_output_is_in_start_time_order(tmp_path):
    code, out, _ = run(["--file", str(shuffled_log(tmp_path)), "-o", "json"])
    times = [r["start_time"] for r in json.loads(out)]
    assert code == 0 and len(times) > 10 and times == sorted(times)


def test_nothing_is_left_in_the_temporary_directory(tmp_path, monkeypatch):
    spill_dir = tmp_path / "tmp"
    spill_dir.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(spill_dir))
    code, out, _ = run(["--file", str(shuffled_log(tmp_path)), "-o", "wide"])
    assert code == 0 and out.count("\n") > 10
    assert list(spill_dir.iterdir()) == []



# Values that each take the fast paths of the streamed renderers off their common case: a
# JSON text that needs escaping, a table cell that needs `printable`, times in other
# offsets and with microseconds, `%` (the writers format with printf-style templates), the
# spill's own separators, non-ASCII (the table then collects), JSON-log values of other
# types, and the spellings of null.
HOSTILE_TEXTS = ['a"b', "back\\slash", "esc\x1b[31mred", "cell\x1fsep", "nul\x00byte",
                 "tab\there", "%s%d%%", "None", "null", "NaN", '""""', "\u2028line",
                 "nbsp\u00a0", "caf\u00e9", "\u6f22\u5b57", "\x7fdel", "lone\udcff",
                 "-x", " lead", "trail ", ""]
HOSTILE_TIMES = ["2026-11-26T03:22:27.520Z", "2026-11-26T03:22:27.520123Z",
                 "2026-11-26T08:52:27.000+05:30", "2026-11-25T19:22:27.999-08:00",
                 "2026-11-26T03:22:27Z", "0999-01-01T00:00:00.001Z"]


def _hostile_log(rnd: random.Random, lines: int, hostile: float, texts: list[str]) -> bytes:
    """TEXT and JSON access-log lines in no particular time order; with probability
    `hostile` a field takes one of `texts` (a time one of HOSTILE_TIMES), else an
    ordinary value."""
    def text(plain: str) -> str:
        return rnd.choice(texts) if rnd.random() < hostile else plain

    def token(plain: str) -> str:  # the TEXT format's unquoted fields hold no space or quote
        value = text(plain)
        return value if value and not any(c in value for c in ' "\t\n') else plain

    out = []
    for i in range(lines):
        start = rnd.choice(HOSTILE_TIMES) if rnd.random() < hostile else \
            f"2026-11-26T03:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}." \
            f"{rnd.randrange(1000):03d}Z"
        flags = rnd.choice(["-", "UT", "URX,UF", "DC", token("NR")])
        code, duration = rnd.choice([200, 503, 0, 404]), rnd.choice([0, 7, 999, 1500, 61_000,
                                                                      3_600_000])
        service = rnd.choice(["-", "12", "junk"])
        if rnd.random() < 0.3:
            record = {"start_time": start, "method": text("GET"), "path": text("/p"),
                      "protocol": "HTTP/1.1", "response_code": code,
                      "response_flags": flags, "response_code_details": text("via_upstream"),
                      "bytes_received": 0, "bytes_sent": rnd.randrange(100),
                      "duration": duration,
                      "upstream_service_time": rnd.choice([None, 3, "4", True, "x"]),
                      "user_agent": text("curl/8"), "request_id": f"r{i}",
                      "authority": text("svc"), "upstream_host": text("10.0.0.1:80"),
                      "upstream_cluster": text("outbound|80||svc"),
                      "route_name": rnd.choice([text("default"), 42, None, ""])}
            line = json.dumps(record, ensure_ascii=rnd.random() < 0.5)
        else:
            q = [text(v) for v in ("-", "10.1.1.1", "curl/8", f"r{i}", "svc", "10.0.0.1:80")]
            line = (f'[{start}] "{token("GET")} {token("/p")} HTTP/1.1" {code} {flags} '
                    f'{token("via_upstream")} - "{q[0]}" 0 {rnd.randrange(100)} {duration} '
                    f'{service} "{q[1]}" "{q[2]}" "{q[3]}" "{q[4]}" "{q[5]}" '
                    f'{token("outbound|80||svc")} 10.0.0.2:1 10.0.0.3:80 10.0.0.4:2 - '
                    f'{token("default")}')
        out.append(line.encode("utf-8", "surrogateescape") + b"\n")
    return b"".join(out)


ASCII_HOSTILE_TEXTS = [t for t in HOSTILE_TEXTS if t.isascii()]  # the table streams these


@pytest.mark.parametrize("hostile,texts", [(0.0, []), (0.02, ASCII_HOSTILE_TEXTS),
                                           (0.02, HOSTILE_TEXTS), (0.3, HOSTILE_TEXTS)],
                         ids=["plain", "some-ascii", "some", "many"])
@pytest.mark.parametrize("fmt", ["short", "wide", "json", "yaml"])
def test_hostile_fields_stream_as_they_collect(tmp_path, monkeypatch, fmt, hostile, texts):
    """A generated log whose fields need escaping here and there writes exactly what the
    collecting path writes, in batches of which some are plain and some not."""
    monkeypatch.setattr(logfile, "BATCH", 7)
    if fmt == "yaml":  # libyaml cannot write a lone surrogate, streamed or collected
        texts = [t for t in texts if not any("\ud800" <= c <= "\udfff" for c in t)]
    data = _hostile_log(random.Random(11), 400, hostile, texts)
    path = tmp_path / "hostile.log"
    path.write_bytes(data)
    streamed = run(["--file", str(path), "-o", fmt])
    collected = run(["--file", "-", "-o", fmt], stdin=data)
    assert streamed[0] == collected[0] == 0
    assert streamed[2] == collected[2]
    assert streamed[1] == collected[1]
    assert streamed[1].count("\n") > 400


def test_json_written_as_bytes_to_a_binary_stdout(tmp_path, monkeypatch):
    """-o json goes to stdout's binary buffer (spill bytes as they are): the bytes are the
    ones the collecting path's text stream writes, lone surrogates included."""
    monkeypatch.setattr(logfile, "BATCH", 7)
    data = _hostile_log(random.Random(5), 300, 0.1, HOSTILE_TEXTS)
    path = tmp_path / "hostile.log"
    path.write_bytes(data)
    written = []
    for argv, stdin in ((["--file", str(path)], None), (["--file", "-"], data)):
        raw = io.BytesIO()
        out = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape")
        saved = sys.stdin
        if stdin is not None:
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
        try:
            assert accesslog.main([*argv, "-o", "json"], stdout=out,
                                  stderr=io.StringIO()) == 0
        finally:
            sys.stdin = saved
        out.flush()
        written.append(raw.getvalue())
    assert written[0] == written[1]
    assert b"\xff" in written[0] and len(json.loads(written[0].decode(errors="replace"))) > 250


def test_json_items_of_records_with_a_pod_or_another_field_order():
    """Records that are not a file's (a pod name; a __dict__ in another order, as
    dataclasses.replace may leave it) are written one by one, still as write_json does."""
    import dataclasses

    from kubectl_mesh import output
    from kubectl_mesh.accesslog.jsonitems import SEPARATOR, JsonItems
    from kubectl_mesh.accesslog.parser import parse_lines

    records = list(parse_lines(LOG.read_bytes().splitlines()))[:20]
    moved = dataclasses.replace(records[0])
    moved.__dict__["start_time"] = moved.__dict__.pop("start_time")  # now last
    for batch in ([dataclasses.replace(r, pod="p-1") for r in records], [moved, *records]):
        text, sizes = JsonItems(lambda t: len(t.encode()))(batch)
        expected = "".join(output.json_value(r.to_dict(), "\n  ") + SEPARATOR for r in batch)
        assert text == expected
        assert sum(sizes) == len(expected.encode())
