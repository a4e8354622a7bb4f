"""`accesslog --file PATH`: a log file's requests in start-time order without holding them.

Collecting the records of a 1 M-line log took 3.6 GB (a record is ~3 KB of Python objects)
and most of a minute; reading the file twice cost a second parse. Instead the file is parsed
once: each matching request is rendered at once (its table cells, or its JSON/YAML text) and
spilled to an unlinked temporary file (gone with the process, even after kill -9), keeping in
memory only its start time and where its text starts (16 bytes), plus the table's column
widths. The output is then written from the spill: straight through when the log was in
start-time order, otherwise in start-time order (a stable sort, as the collecting path
sorts), a batch at a time cut out of the span it lies in (a proxy logs a request when it
ends, so a log is nearly in start order).

Rendering is done a batch of records at a time in C-level passes (`render.request_columns`,
`jsonitems.JsonItems`): per-request Python calls cost as much as parsing the request.

Output is byte for byte what `render.write_requests` writes for the collected records.
stdin and pipes are not regular files: `show_file` returns None for them, and for table cells
that are not plain ASCII (their display width needs the table writer), and the caller
collects as before.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import functools
import gc
import itertools
import operator
import os
import tempfile
from array import array
from datetime import datetime
from operator import attrgetter
from typing import IO, Callable, Iterable, Iterator

from kubectl_mesh import output
from kubectl_mesh.accesslog.jsonitems import SEPARATOR, JsonItems
from kubectl_mesh.accesslog.parser import ParseStats, parse_lines
from kubectl_mesh.accesslog.record import AccessLogRecord
from kubectl_mesh.accesslog.render import (REQUEST_HEADERS, REQUEST_WIDE_EXTRA,
                                           request_cell_caches, request_columns)

GAP = 3  # = render.write_requests
BATCH = 1024  # requests rendered before their text is spilled
# After each table cell and each JSON value in the spill: request_columns escapes control
# characters in cells, and JSON escapes them in strings, so it cannot occur inside one.
CELL = "\x1f"
COPY = 1 << 20
WINDOW = 8 << 20  # the most read at once to cut a batch of requests out of, in start order


class _Spill:
    """Rendered requests appended to an unlinked temporary file; `offsets[i]` is where the
    i-th starts (one more entry marks the end)."""

    def __init__(self, f: IO[bytes], errors: str):
        self.f = f
        self.errors = errors  # how the texts are encoded: `encoded_size` and `decode` agree
        self.offsets = array("q", [0])

    def encoded_size(self, text: str) -> int:
        return len(text.encode("utf-8", self.errors))

    def decode(self, data: bytes) -> str:
        return data.decode("utf-8", self.errors)

    def add(self, text: str, lengths: Iterable[int]) -> None:
        """Append `text`, the requests' texts one after the other; `lengths` are their sizes
        in bytes, in order."""
        self.offsets.extend(itertools.islice(
            itertools.accumulate(lengths, initial=self.offsets[-1]), 1, None))
        self.f.write(text.encode("utf-8", self.errors))

    def blocks(self, order) -> Iterator[bytes]:
        """The requests' texts (UTF-8), several whole ones at a time: in `order` (indexes),
        or in spill order when None (then read in large blocks, each cut after its last
        whole request)."""
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
                i = bisect.bisect_right(offsets, position + len(block), lo=i) - 1
                cut = offsets[i] - position
                yield block[:cut]
                rest, position = block[cut:], offsets[i]
            return
        fd = self.f.fileno()
        for at in range(0, len(order), BATCH):
            batch = order[at:at + BATCH]
            first, last = min(batch), max(batch)
            start = offsets[first]
            if offsets[last + 1] - start <= WINDOW:
                # nearly in order (a proxy logs a request when it ends): the span these
                # requests lie in, read at once and cut, instead of a read per request
                span = os.pread(fd, offsets[last + 1] - start, start)
                yield b"".join([span[offsets[k] - start:offsets[k + 1] - start]
                                for k in batch])
            else:
                yield b"".join([os.pread(fd, offsets[k + 1] - offsets[k], offsets[k])
                                for k in batch])


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
    # -o json is written to stdout's binary buffer when it has one (then the spill is
    # encoded as stdout encodes); otherwise any lone surrogate survives the round trip
    binary = _binary_buffer(stdout) if fmt == "json" else None
    errors = stdout.errors if binary is not None else "surrogatepass"
    # text mode decodes in C (the parser's own generator would decode line by line);
    # newline="\n" splits and keeps lines exactly as reading bytes does
    with open(path, encoding="utf-8", errors="replace", newline="\n") as f, \
            tempfile.TemporaryFile(prefix="kubectl-mesh-") as spill_file:
        spill = _Spill(spill_file, errors)
        render = _row_text(wide, widths, flags) if table else _data_text(
            JsonItems(spill.encoded_size) if fmt == "json" else
            functools.partial(_yaml_items, encoded_size=spill.encoded_size))
        matching = parse_lines(f, stats)
        if not opts.record_filter.keeps_everything:
            matching = filter(opts.record_filter.matches, matching)
        with _no_cycle_collection():
            while batch := list(itertools.islice(matching, BATCH)):
                if not render(batch, spill):
                    return None
                starts.extend(map(datetime.timestamp, map(attrgetter("start_time"), batch)))
        if not starts and table:
            return 0
        order = None if _ascending(starts) else sorted(range(len(starts)),
                                                          key=starts.__getitem__)
        blocks = spill.blocks(order)
        if table:
            _write_table(stdout, headers, widths, map(spill.decode, blocks))
            from kubectl_mesh.accesslog.flaglegend import write_legend
            write_legend(stdout, flags)
        elif fmt == "json":
            _write_json(binary.write if binary is not None else
                        lambda data: stdout.write(spill.decode(data)), blocks)
        else:
            _write_yaml(stdout, map(spill.decode, blocks))
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
    return all(map(operator.le, starts, itertools.islice(starts, 1, None)))


def _cells(block: str, width: int) -> Iterator[tuple[str, ...]]:
    """The requests of a spilled block, each as its `width` cells (each cell followed by
    CELL in the block; split and grouped in C)."""
    return zip(*[iter(block.split(CELL))] * width)


def _row_text(wide: bool, widths: list[int], flags: set[str]) -> Callable:
    """Renders a batch of records as table rows into the spill (each cell followed by
    CELL), widening `widths` and collecting the response flags; False when a cell is not
    plain ASCII."""
    caches = request_cell_caches()

    def render(batch: list[AccessLogRecord], spill: _Spill) -> bool:
        columns = request_columns(batch, wide, caches)
        texts = list(map(CELL.join, zip(*columns, itertools.repeat(""))))
        text = "".join(texts)
        if not text.isascii():
            return False  # wide characters: the table writer measures them (tabulate)
        for i, column in enumerate(columns):
            longest = max(map(len, column))
            if longest > widths[i]:
                widths[i] = longest
        flags.update(itertools.chain.from_iterable(map(attrgetter("response_flags"), batch)))
        spill.add(text, map(len, texts))  # ASCII: as many bytes as characters
        return True

    return render


def _yaml_items(batch: list[AccessLogRecord], encoded_size) -> tuple[str, Iterable[int]]:
    """YAML block-list items, and their sizes in bytes."""
    items = [output.to_yaml([r.to_dict()]) for r in batch]
    return "".join(items), map(encoded_size, items)


def _data_text(texts: Callable) -> Callable:
    """Renders a batch of records into the spill with `texts` (`JsonItems`, or
    `_yaml_items`), which gives their text and each one's size in bytes."""

    def render(batch: list[AccessLogRecord], spill: _Spill) -> bool:
        spill.add(*texts(batch))
        return True

    return render


def _write_table(out: IO[str], headers, widths: list[int], blocks) -> None:
    """What `output.render_table` writes for these cells when they are plain ASCII."""
    # every column but the last padded to its width plus the gap, trailing spaces dropped
    # (printf-style: a fifth cheaper than str.format per row)
    line = "".join(f"%-{w + GAP}s" for w in widths[:-1]) + "%s"
    out.write((line % tuple(headers)).rstrip() + "\n")
    for block in blocks:
        if block:
            out.write("\n".join(map(str.rstrip, map(line.__mod__,
                                                    _cells(block, len(widths)))))
                      + "\n")


def _write_json(write: Callable[[bytes], object], blocks) -> None:
    """What `output.write_json` writes for the list of the records' dicts: the items
    (each followed by SEPARATOR) as they are, the last one's SEPARATOR dropped."""
    blocks = filter(None, blocks)  # a block read may hold no whole request
    block = next(blocks, b"")
    if not block:
        write(b"[]\n")
        return
    write(b"[\n  ")
    for following in blocks:
        write(block)
        block = following
    write(block[:-len(SEPARATOR)] + b"\n]\n")


def _binary_buffer(out: IO[str]):
    """`out`'s binary buffer, flushed, when it has one and encodes in UTF-8 (a terminal, a
    pipe, a file): bytes of the spill then need no decoding to be encoded again."""
    buffer = getattr(out, "buffer", None)
    encoding = getattr(out, "encoding", None)
    if buffer is None or not encoding or codecs.lookup(encoding).name != "utf-8" or \
            not isinstance(getattr(out, "errors", None), str):
        return None
    out.flush()
    return buffer


def _write_yaml(out: IO[str], blocks) -> None:
    """What `output.to_yaml` writes for the list: a block list is its items one by one."""
    first = True
    for block in blocks:
        if block:
            out.write(block)
            first = False
    if first:
        out.write(output.to_yaml([]))
