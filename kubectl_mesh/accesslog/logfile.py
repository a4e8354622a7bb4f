"""`accesslog --file PATH`: a log file's requests in start-time order without holding them.

Collecting the records of a 1 M-line log took 3.6 GB (a record is ~3 KB of Python objects)
and most of a minute. A regular file can be read twice instead: the first pass parses and
filters every line and keeps, per matching request, only its start time and the line's
offset (16 bytes), plus the table's column widths; the second pass reads the lines again
in start-time order and writes each request as it is parsed. A proxy logs a request when it
ends, so the file is nearly in start order: the second pass reads sequentially and holds
back the few requests that come early (at most `READ_AHEAD`); a request much further away
(one that ran for minutes) is read directly at its offset.

Output is byte for byte what `render.write_requests` writes for the collected records.
stdin and pipes cannot be read twice: `show_file` returns None for them and the caller
collects as before.
"""

from __future__ import annotations

import os
from array import array
from typing import IO, Iterator

from kubectl_mesh import output
from kubectl_mesh.accesslog.parser import ParseStats, parse_lines
from kubectl_mesh.accesslog.record import AccessLogRecord
from kubectl_mesh.accesslog.render import REQUEST_HEADERS, REQUEST_WIDE_EXTRA, request_row

READ_AHEAD = 10_000  # requests held back in the second pass, at most
GAP = 3  # = render.write_requests


class _Offsets:
    """The lines of a binary file, remembering where the line last handed out starts (the
    parser consumes lazily: when it yields a record, that line is the record's)."""

    def __init__(self, f: IO[bytes]):
        self.f = f
        self.current = 0

    def __iter__(self) -> Iterator[bytes]:
        offset = 0
        for line in self.f:
            self.current = offset
            offset += len(line)
            yield line


def show_file(path: str, opts, stdout: IO[str], stats: ParseStats) -> int | None:
    """Write the matching requests of the log file at `path` (table with its flag legend, or
    json/yaml); the number written, or None when `path` is not a regular file."""
    if path == "-" or not os.path.isfile(path):
        return None
    fmt = opts.output
    table = fmt in ("short", "wide")
    wide = fmt == "wide"
    headers = REQUEST_HEADERS + (REQUEST_WIDE_EXTRA if wide else ())
    widths = [len(h) for h in headers]
    starts, offsets = array("d"), array("q")
    flags: set[str] = set()
    in_order, plain, last = True, True, float("-inf")
    with open(path, "rb") as f:
        lines = _Offsets(f)
        for record in parse_lines(lines, stats):
            if not opts.record_filter.matches(record):
                continue
            start = record.start_time.timestamp()
            in_order = in_order and start >= last
            last = max(last, start)
            starts.append(start)
            offsets.append(lines.current)
            if table:
                cells = request_row(record, wide)
                plain = plain and "".join(cells).isascii()
                widths = list(map(max, widths, map(len, cells)))
                flags.update(record.response_flags)
        if table and not plain:
            return None  # wide characters: the table writer measures them (tabulate)
        if not starts and table:
            return 0
        order = range(len(starts)) if in_order else \
            sorted(range(len(starts)), key=starts.__getitem__)
        records = _in_order(f, order, offsets, opts.record_filter)
        if table:
            _write_table(stdout, headers, widths, (request_row(r, wide) for r in records))
            from kubectl_mesh.accesslog.flaglegend import write_legend
            write_legend(stdout, flags)
        elif fmt == "json":
            _write_json(stdout, records)
        else:
            _write_yaml(stdout, records)
    return len(starts)


def _in_order(f: IO[bytes], order, offsets: array, record_filter) -> Iterator[AccessLogRecord]:
    """The matching records in `order` (indexes among the matching records in file order),
    reading the file again from the start."""
    f.seek(0)
    sequential = (r for r in parse_lines(f, ParseStats()) if record_filter.matches(r))
    numbered = enumerate(sequential)
    held: dict[int, AccessLogRecord] = {}
    fetched: set[int] = set()  # read directly at their offset, to be skipped when reached
    for want in order:
        record = held.pop(want, None)
        while record is None:
            if len(held) >= READ_AHEAD:
                record = _read_at(f.fileno(), offsets[want])
                fetched.add(want)
                break
            index, candidate = next(numbered)
            if index == want:
                record = candidate
            elif index in fetched:
                fetched.discard(index)
            else:
                held[index] = candidate
        yield record


def _read_at(fd: int, offset: int) -> AccessLogRecord:
    """The record of the line at `offset` (pread: the sequential reader keeps its place)."""
    chunk = b""
    while b"\n" not in chunk:
        more = os.pread(fd, 64 * 1024, offset + len(chunk))
        if not more:
            break
        chunk += more
    line = chunk.split(b"\n", 1)[0]
    return next(parse_lines([line], ParseStats()))


def _write_table(out: IO[str], headers, widths: list[int], rows) -> None:
    """What `output.render_table` writes for these cells when they are plain ASCII."""
    # every column but the last padded to its width plus the gap, trailing spaces dropped
    line = "".join(f"{{:<{w + GAP}}}" for w in widths[:-1]) + "{}"
    out.write(line.format(*headers).rstrip() + "\n")
    batch = []
    for cells in rows:
        batch.append(line.format(*cells).rstrip() + "\n")
        if len(batch) >= 1000:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch))


def _write_json(out: IO[str], records: Iterator[AccessLogRecord]) -> None:
    """What `output.write_json` writes for the list of the records' dicts."""
    first = True
    for record in records:
        out.write(("[\n  " if first else ",\n  ") + output.json_value(record.to_dict(), "\n  "))
        first = False
    out.write("[]\n" if first else "\n]\n")


def _write_yaml(out: IO[str], records: Iterator[AccessLogRecord]) -> None:
    """What `output.to_yaml` writes for the list: a block list is its items one by one."""
    first = True
    for record in records:
        out.write(output.to_yaml([record.to_dict()]))
        first = False
    if first:
        out.write(output.to_yaml([]))
