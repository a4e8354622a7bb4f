"""`accesslog --file` on a regular file (read twice, never held) writes exactly what the
collecting path writes for the same log from stdin, in every format, in start-time order
also when the log is not."""

from __future__ import annotations

import io
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


def shuffled_log(tmp_path) -> Path:
    """Both real logs, lines shuffled with a fixed seed: far from start-time order."""
    lines = LOG.read_bytes().splitlines(keepends=True) + \
        JSON_LOG.read_bytes().splitlines(keepends=True)
    random.Random(7).shuffle(lines)
    path = tmp_path / "shuffled.log"
    path.write_bytes(b"".join(lines))
    return path


@pytest.mark.parametrize("read_ahead", [2, 10_000], ids=["direct-reads", "held-back"])
@pytest.mark.parametrize("flags", [[], ["--code", "5xx"], ["--flags", "UT,UH"],
                                   ["--host", "nothing-matches"]],
                         ids=["all", "5xx", "flags", "none"])
@pytest.mark.parametrize("fmt", ["short", "wide", "json", "yaml"])
def test_file_output_equals_the_collected_output(tmp_path, monkeypatch, fmt, flags, read_ahead):
    monkeypatch.setattr(logfile, "READ_AHEAD", read_ahead)
    path = shuffled_log(tmp_path)
    streamed = run(["--file", str(path), "-o", fmt, *flags])
    collected = run(["--file", "-", "-o", fmt, *flags], stdin=path.read_bytes())
    assert streamed[0] == collected[0] == 0
    assert streamed[1] == collected[1]
    assert streamed[2] == collected[2]


def test_file_output_is_in_start_time_order(tmp_path):
    code, out, _ = run(["--file", str(shuffled_log(tmp_path)), "-o", "json"])
    import json
    times = [r["start_time"] for r in json.loads(out)]
    assert code == 0 and len(times) > 10 and times == sorted(times)
