"""Container logs in the CRI file format (`<RFC3339Nano> <stream> F <line>`), and the
`pods/log` reader with follow, sinceSeconds, tailLines and timestamps."""

from __future__ import annotations

import datetime
import pathlib
import re
import threading
import time


def _stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


class ContainerLog:
    """Appends a process's stdout and stderr lines, timestamped, to one file."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self._lock = threading.Lock()
        self._file = open(path, "ab", buffering=0)
        self._subscribers: list = []

    def write_line(self, stream: str, text: str | bytes) -> None:
        if isinstance(text, str):
            text = text.encode()
        line = b"%s %s F %s\n" % (_stamp().encode(), stream.encode(), text.rstrip(b"\n"))
        with self._lock:
            if not self._file.closed:
                self._file.write(line)

    def follow_process(self, process) -> None:
        for stream, pipe in (("stdout", process.stdout), ("stderr", process.stderr)):
            if pipe is not None:
                threading.Thread(target=self._pump, args=(stream, pipe), daemon=True).start()

    def _pump(self, stream: str, pipe) -> None:
        with pipe:
            for raw in iter(pipe.readline, b""):
                self.write_line(stream, raw)
                for sub in list(self._subscribers):
                    sub(stream, raw)

    def subscribe(self, callback) -> None:
        self._subscribers.append(callback)

    def unsubscribe(self, callback) -> None:
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def close(self) -> None:
        with self._lock:
            self._file.close()


CHUNK = 64 * 1024  # what is read, and about what is written, at a time
# `_stamp()`'s format; fixed width, so stamps of UTC times compare as bytes in time order
STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")


def _renderer(since: bytes | None, timestamps: bool):
    """render(line without its newline) -> the bytes to send, or None to skip the line."""
    def render(line: bytes) -> bytes | None:
        parts = line.split(b" ", 3)
        if len(parts) < 4 or not STAMP.fullmatch(parts[0]):  # not a CRI line: as it is
            return line + b"\n"
        if since is not None and parts[0] < since:
            return None
        return (parts[0] + b" " + parts[3] if timestamps else parts[3]) + b"\n"
    return render


def _last_newline_end(f, end: int) -> int:
    """The offset just past the last newline before `end` (0 if none): where the complete
    lines end; a line still being written stays for later."""
    pos = end
    while pos > 0:
        size = min(CHUNK, pos)
        f.seek(pos - size)
        i = f.read(size).rfind(b"\n")
        if i >= 0:
            return pos - size + i + 1
        pos -= size
    return 0


def _tail_start(f, end: int, lines: int) -> int:
    """The offset of the first of the last `lines` complete lines of [0, end), found by
    reading backwards (nothing but offsets is kept)."""
    if lines <= 0:
        return end
    pos, seen = end - 1, 0  # the byte at end-1 is the last line's own newline
    while pos > 0:
        size = min(CHUNK, pos)
        f.seek(pos - size)
        block = f.read(size)
        i = size
        while (i := block.rfind(b"\n", 0, i)) >= 0:
            seen += 1
            if seen == lines:
                return pos - size + i + 1
        pos -= size
    return 0


def _send_lines(data: bytes, render, write) -> None:
    """Render complete lines (`data` ends with a newline or is empty) and write them in
    batches of about CHUNK bytes."""
    out: list[bytes] = []
    size = 0
    for line in data.split(b"\n")[:-1]:
        rendered = render(line)
        if rendered is not None:
            out.append(rendered)
            size += len(rendered)
            if size >= CHUNK:
                write(b"".join(out))
                out, size = [], 0
    if out:
        write(b"".join(out))


def serve_log(write, path: pathlib.Path, *, follow: bool, since_seconds: int | None,
              tail_lines: int | None, timestamps: bool, alive) -> None:
    """Write the log's lines through `write(bytes)` as they are read, CHUNK by CHUNK (the
    first bytes leave at once, memory stays bounded whatever the file's size); with follow,
    keep going while `alive()`.

    As the kubelet reads a CRI log (k8s.io/cri-client pkg/logs/logs.go `ReadLogs`, called
    from pkg/kubelet/kuberuntime/kuberuntime_logs.go): the tail's start is found first,
    reading backwards (`findTailLineStartIndex`), then each line older than sinceSeconds is
    skipped; with follow, lines are sent as they are completed."""
    since = None
    if since_seconds:
        start_time = (datetime.datetime.now(datetime.timezone.utc)
                      - datetime.timedelta(seconds=since_seconds))
        since = start_time.strftime("%Y-%m-%dT%H:%M:%S.%f000Z").encode()
    render = _renderer(since, timestamps)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        end = _last_newline_end(f, f.seek(0, 2))
        f.seek(_tail_start(f, end, tail_lines) if tail_lines is not None else 0)
        pending = _pump(f, b"", render, write, f.tell(), end)
        while follow and alive():
            before = f.tell()
            pending = _pump(f, pending, render, write, before, None)
            if f.tell() == before:
                time.sleep(0.1)


def _pump(f, pending: bytes, render, write, pos: int, end: int | None) -> bytes:
    """Send the complete lines from `pos` up to `end` (None: the file's current end), CHUNK
    by CHUNK; return what is left of a line not yet complete."""
    while end is None or pos < end:
        block = f.read(CHUNK if end is None else min(CHUNK, end - pos))
        if not block:
            break
        pos += len(block)
        pending += block
        cut = pending.rfind(b"\n") + 1
        if cut:
            _send_lines(pending[:cut], render, write)
            pending = pending[cut:]
    return pending
