"""Follow mode: read every pod's log concurrently and print matching requests as they come.

Memory stays flat however long the log runs: each pod's reader parses and filters lines as
they stream (nothing is kept), hands records to a bounded queue (a slow terminal slows the
readers instead of growing a buffer), and the printer holds at most `max_pending` records
for a short re-ordering window. Rows are written one at a time with column widths fixed up
front (a wider cell widens its column from then on), so nothing waits for a whole table.
"""

from __future__ import annotations

import heapq
import itertools
import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import IO, Callable, Iterable, Mapping, Sequence

from kubectl_mesh.accesslog.filters import RecordFilter
from kubectl_mesh.accesslog.parser import ParseStats, parse_lines
from kubectl_mesh.accesslog.record import AccessLogRecord
from kubectl_mesh.accesslog.render import REQUEST_HEADERS, REQUEST_WIDE_EXTRA, request_row

QUEUE_SIZE = 1024
# Seconds a record waits for earlier ones from other pods: longer than Envoy's access-log
# flush interval, which pilot-agent sets to 1 s (pkg/envoy/proxy.go `args`:
# --file-flush-interval-msec 1000, ProxyConfig.fileFlushInterval), so a line one pod wrote
# earlier but flushed later still comes first.
REORDER_WINDOW = 1.2
MAX_PENDING = 2048
FLUSH_ROWS = 256
GAP = 3
# Starting widths of the streamed table (a wider cell widens its column from then on).
START_WIDTHS = {"TIME": 12, "CODE": 4, "FLAGS": 5, "METHOD": 6, "AUTHORITY": 24, "PATH": 16,
                "DURATION": 8, "UPSTREAM": 20, "DETAILS": 16, "CLUSTER": 24, "ROUTE": 8}

LineSource = Callable[[], Iterable[bytes | str]]  # opens the stream, yields lines


class Reorderer:
    """Releases records in start-time order: the earliest-starting one once it has waited
    `window` seconds (so a record waits at most about twice the window), or as soon as more
    than `max_pending` wait. Pods' lines arrive interleaved, and a slow request is logged
    when it ends, after requests that started later."""

    def __init__(self, window: float = REORDER_WINDOW, max_pending: int = MAX_PENDING):
        self.window = window
        self.max_pending = max_pending
        self._heap: list = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, record: AccessLogRecord, now: float) -> None:
        heapq.heappush(self._heap, (record.start_time, next(self._seq), now, record))

    def ready(self, now: float) -> Iterable[AccessLogRecord]:
        heap = self._heap
        while heap and (heap[0][2] + self.window <= now or len(heap) > self.max_pending):
            yield heapq.heappop(heap)[3]

    def drain(self) -> Iterable[AccessLogRecord]:
        while self._heap:
            yield heapq.heappop(self._heap)[3]


class RowWriter:
    """Writes request rows one by one: a table (short/wide) with columns that only grow, or
    one JSON object per line (`json`), or one YAML document per record (`yaml`)."""

    def __init__(self, out: IO[str], fmt: str, pod_width: int = 0):
        self.out = out
        self.fmt = fmt
        self.wide = fmt == "wide"
        self.headers: Sequence[str] = REQUEST_HEADERS + (REQUEST_WIDE_EXTRA if self.wide else ())
        self.widths = [max(len(h), START_WIDTHS.get(h, 0)) for h in self.headers]
        if "POD" in self.headers:
            self.widths[self.headers.index("POD")] = max(3, pod_width)
        self._header_written = False
        self.rows = 0
        self.unflushed = 0  # rows written since the last flush

    def _line(self, cells: Sequence[str]) -> str:
        for i, cell in enumerate(cells):
            self.widths[i] = max(self.widths[i], len(cell))
        last = len(cells) - 1
        return "".join(c if i == last else c.ljust(self.widths[i] + GAP)
                       for i, c in enumerate(cells)).rstrip() + "\n"

    def write(self, record: AccessLogRecord) -> None:
        if self.fmt == "json":
            self.out.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        elif self.fmt == "yaml":
            from kubectl_mesh.output import to_yaml
            self.out.write("---\n" + to_yaml(record.to_dict()))
        else:
            if not self._header_written:
                self.out.write(self._line(self.headers))
                self._header_written = True
            self.out.write(self._line(request_row(record, self.wide)))
        self.rows += 1
        self.unflushed += 1

    def flush(self) -> None:
        if self.unflushed:
            self.out.flush()
            self.unflushed = 0


@dataclass
class PodEnd:
    """A reader finished: the stream ended (`error` None) or failed."""

    pod: str
    error: BaseException | None


@dataclass
class PodJoin:
    """A pod to follow from now on (a watch saw it start)."""

    pod: str
    source: LineSource


class _WatchEnd:
    """The watch stopped: no more pods will join."""


Watch = Callable[[Callable[[str, LineSource], None]], None]


def _read(pod: str, source: LineSource, record_filter: RecordFilter, stats: ParseStats,
          out: "queue.Queue", stop: threading.Event) -> None:
    error = None
    try:
        for record in parse_lines(source(), stats, pod=pod or None):
            if stop.is_set():
                return
            if record_filter.matches(record):
                _put(out, record, stop)
    except BaseException as e:  # noqa: BLE001 - handed to the printer, which decides
        error = e
    _put(out, PodEnd(pod, error), stop)


def _put(out: "queue.Queue", item, stop: threading.Event) -> None:
    """Block while the queue is full (back-pressure), but give up once the printer stopped."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


def _watching(watch: Watch, out: "queue.Queue", stop: threading.Event) -> None:
    try:
        watch(lambda pod, source: _put(out, PodJoin(pod, source), stop))
    finally:
        _put(out, _WatchEnd(), stop)


def follow(sources: Mapping[str, LineSource], record_filter: RecordFilter, writer: RowWriter,
           *, stats: dict[str, ParseStats], on_end: Callable[[PodEnd], None] | None = None,
           close: Callable[[], None] | None = None, window: float = REORDER_WINDOW,
           clock: Callable[[], float] = time.monotonic, watch: Watch | None = None) -> int:
    """Run until every source has ended (or Ctrl-C, which propagates); returns rows written.

    `sources` maps a pod name to a function that opens its log and yields lines; `stats[pod]`
    counts that pod's lines; `on_end` hears of each ended stream; `close()` (called on the
    way out, also on Ctrl-C) must make blocked sources and the watch return.

    `watch(join)`, when given, runs in a thread of its own: it calls `join(pod, source)` for
    every pod to follow from then on (its lines are counted in a new `stats[pod]`), and
    returns when the watch ends. While it runs the follow goes on, even with no pod left."""
    records: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(pod: str, source: LineSource) -> None:
        stats.setdefault(pod, ParseStats())
        t = threading.Thread(target=_read, name=f"accesslog-{pod}", daemon=True,
                             args=(pod, source, record_filter, stats[pod], records, stop))
        threads.append(t)
        t.start()

    for pod in sorted(sources):
        start(pod, sources[pod])
    running = len(sources)
    if watch is not None:
        t = threading.Thread(target=_watching, name="accesslog-watch", daemon=True,
                             args=(watch, records, stop))
        threads.append(t)
        t.start()
        running += 1
    pending = Reorderer(window)
    try:
        while running:
            try:
                item = records.get(timeout=window / 3 if len(pending) else 0.5)
            except queue.Empty:
                item = None
            now = clock()
            if isinstance(item, PodEnd):
                running -= 1
                if on_end is not None:
                    on_end(item)
            elif isinstance(item, PodJoin):
                start(item.pod, item.source)
                running += 1
            elif isinstance(item, _WatchEnd):
                running -= 1
            elif item is not None:
                pending.push(item, now)
            for record in pending.ready(now):
                writer.write(record)
            # A follow is read live: flush whenever nothing else is waiting to be read (and
            # every FLUSH_ROWS under a flood), not after every row - that costs ~2x the CPU.
            if records.empty() or writer.unflushed >= FLUSH_ROWS:
                writer.flush()
        for record in pending.drain():
            writer.write(record)
        writer.flush()
    finally:
        stop.set()
        if close is not None:
            close()
        for t in threads:
            t.join(timeout=1.0)
    return writer.rows
