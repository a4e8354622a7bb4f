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

