"""`accesslog --file PATH`: a log file's requests in start-time order without holding them.

Collecting the records of a 1 M-line log took 3.6 GB (a record is ~3 KB of Python objects)
and most of a minute; reading the file twice cost a second parse. Instead the file is parsed
once: each matching request is rendered at once (its table cells, or its JSON/YAML text) and
spilled to an unlinked temporary file (gone with the process, even after kill -9), keeping in
memory only its start time and where its text starts (16 bytes), plus the table's column
widths. The output is then written from the spill: straight through when the log was in
start-time order (a proxy logs a request when it ends, so a log nearly is), otherwise request
by request in start-time order (a stable sort, as the collecting path sorts).

Output is byte for byte what `render.write_requests` writes for the collected records.
stdin and pipes are not regular files: `show_file` returns None for them, and for table cells
that are not plain ASCII (their display width needs the table writer), and the caller
collects as before.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import itertools
import os
import tempfile
from array import array
from datetime import datetime
from operator import attrgetter
from typing import IO, Callable, Iterator

from kubectl_mesh import output
from kubectl_mesh.accesslog.parser import ParseStats, parse_lines
from kubectl_mesh.accesslog.record import AccessLogRecord
from kubectl_mesh.accesslog.render import REQUEST_HEADERS, REQUEST_WIDE_EXTRA, request_columns

GAP = 3  # = render.write_requests
BATCH = 4096  # requests rendered before their text is spilled
CELL = "\x1f"  # between a row's cells in the spill (request_columns escapes control characters)
COPY = 1 << 20


class _Spill:
    """Rendered requests appended to an unlinked temporary file; `offsets[i]` is where the
    i-th starts (one more entry marks the end)."""

    def __init__(self, f: IO[bytes]):
        self.f = f
        self.offsets = array("q", [0])
        self.size = 0

    def add(self, texts: list[str]) -> None:
        """Append texts (one per request), recording where each starts."""
        data = [t.encode() for t in texts]
        offsets, size = self.offsets, self.size
        for chunk in data:
            size += len(chunk)
            offsets.append(size)
        self.size = size
        self.f.write(b"".join(data))

    def texts(self, order) -> Iterator[list[str]]:
        """The requests' texts in batches: in `order` (indexes), or in spill order when
        None (then read in large blocks, each cut after its last whole request)."""
        self.f.flush()
        offsets = self.offsets
        if order is None:
            self.f.seek(0)
            position, i, n = 0, 0, len(offsets) - 1
            rest = b""
            while i < n:
                more = self.f.read(COPY)
                if not more:
                    raise OSError("the temporary file of rendered requests was cut short")
                block = rest + more
                end = position + len(block)
                first = i
                i = bisect.bisect_right(offsets, end, lo=i) - 1
                cut = offsets[i] - position
                yield [block[offsets[k] - position:offsets[k + 1] - position].decode()
                       for k in range(first, i)]
                rest, position = block[cut:], offsets[i]
            return
        fd = self.f.fileno()
        for at in range(0, len(order), BATCH):
            yield [os.pread(fd, offsets[k + 1] - offsets[k], offsets[k]).decode()
                   for k in order[at:at + BATCH]]


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
    flags: set[str] = set()
    starts = array("d")
    render = _row_text(wide, widths, flags) if table else _data_text(fmt)
    # text mode decodes in C (the parser's own generator would decode line by line);
    # newline="\n" splits and keeps lines exactly as reading bytes does
    with open(path, encoding="utf-8", errors="replace", newline="\n") as f, \
            tempfile.TemporaryFile(prefix="kubectl-mesh-") as spill_file:
        spill = _Spill(spill_file)
        matching = parse_lines(f, stats)
        if not opts.record_filter.keeps_everything:
            matching = filter(opts.record_filter.matches, matching)
        with _no_cycle_collection():
            while batch := list(itertools.islice(matching, BATCH)):
                if not render(batch, spill, starts):
                    return None
        if not starts and table:
            return 0
        order = None if _ascending(starts) else sorted(range(len(starts)),
                                                          key=starts.__getitem__)
        batches = spill.texts(order)
        if table:
            _write_table(stdout, headers, widths, batches)
            from kubectl_mesh.accesslog.flaglegend import write_legend
            write_legend(stdout, flags)
        elif fmt == "json":
            _write_json(stdout, batches)
        else:
            _write_yaml(stdout, batches)
    return len(starts)


@contextlib.contextmanager
def _no_cycle_collection():
    """The cyclic garbage collector off while records are parsed and rendered: they hold no
    reference cycles (plain values, tuples, datetimes), so it would only scan the batch in
    hand again and again – a third of the parse's cost at a million lines. Freed by
    reference counting as before; the collector's state is restored afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _ascending(starts: array) -> bool:
    return all(a <= b for a, b in zip(starts, starts[1:]))


def _row_text(wide: bool, widths: list[int], flags: set[str]) -> Callable:
    """Renders a batch of records as table rows into the spill, widening `widths` and
    collecting the response flags; False when a cell is not plain ASCII."""

    def render(batch: list[AccessLogRecord], spill: _Spill, starts: array) -> bool:
        columns = request_columns(batch, wide)
        texts = list(map(CELL.join, zip(*columns)))
        if not "".join(texts).isascii():
            return False  # wide characters: the table writer measures them (tabulate)
        for i, column in enumerate(columns):
            longest = max(map(len, column))
            if longest > widths[i]:
                widths[i] = longest
        flags.update(itertools.chain.from_iterable(map(attrgetter("response_flags"), batch)))
        starts.extend(map(datetime.timestamp, map(attrgetter("start_time"), batch)))
        spill.add(texts)
        return True

    return render


def _data_text(fmt: str) -> Callable:
    """Renders a batch of records as JSON list items or YAML block-list items."""
    if fmt == "json":
        def text(record: AccessLogRecord) -> str:
            return output.json_value(record.to_dict(), "\n  ")
    else:
        def text(record: AccessLogRecord) -> str:
            return output.to_yaml([record.to_dict()])

    def render(batch: list[AccessLogRecord], spill: _Spill, starts: array) -> bool:
        starts.extend(map(datetime.timestamp, map(attrgetter("start_time"), batch)))
        spill.add([text(r) for r in batch])
        return True

    return render


def _write_table(out: IO[str], headers, widths: list[int], batches) -> None:
    """What `output.render_table` writes for these cells when they are plain ASCII."""
    # every column but the last padded to its width plus the gap, trailing spaces dropped
    # (printf-style: a fifth cheaper than str.format per row)
    line = "".join(f"%-{w + GAP}s" for w in widths[:-1]) + "%s"
    out.write((line % tuple(headers)).rstrip() + "\n")
    for texts in batches:
        if texts:
            out.write("\n".join([(line % tuple(row.split(CELL))).rstrip() for row in texts])
                      + "\n")


def _write_json(out: IO[str], batches) -> None:
    """What `output.write_json` writes for the list of the records' dicts."""
    first = True
    for texts in batches:
        if texts:
            out.write(("[\n  " if first else ",\n  ") + ",\n  ".join(texts))
            first = False
    out.write("[]\n" if first else "\n]\n")


def _write_yaml(out: IO[str], batches) -> None:
    """What `output.to_yaml` writes for the list: a block list is its items one by one."""
    first = True
    for texts in batches:
        if texts:
            out.write("".join(texts))
            first = False
    if first:
        out.write(output.to_yaml([]))
