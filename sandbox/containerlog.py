"""Container logs in the CRI file format (`<RFC3339Nano> <stream> F <line>`), and the
`pods/log` reader with follow, sinceSeconds, tailLines and timestamps."""

from __future__ import annotations

import datetime
import pathlib
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


def _parse(line: bytes) -> tuple[datetime.datetime | None, bytes, bytes]:
    parts = line.split(b" ", 3)
    if len(parts) < 4:
        return None, b"", line
    try:
        ts = datetime.datetime.strptime(parts[0][:26].decode() + "Z", "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None, b"", line
    return ts.replace(tzinfo=datetime.timezone.utc), parts[0], parts[3]


def serve_log(write, path: pathlib.Path, *, follow: bool, since_seconds: int | None,
              tail_lines: int | None, timestamps: bool, alive) -> None:
    """Write the log's lines through `write(bytes)`; with follow, keep going while `alive()`."""
    since = (datetime.datetime.now(datetime.timezone.utc)
             - datetime.timedelta(seconds=since_seconds)) if since_seconds else None

    def render(line: bytes) -> bytes | None:
        ts, raw_ts, text = _parse(line.rstrip(b"\n"))
        if since and ts and ts < since:
            return None
        return (raw_ts + b" " + text if timestamps and raw_ts else text) + b"\n"

    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        lines = f.readlines()
        if lines and not lines[-1].endswith(b"\n"):
            f.seek(-len(lines.pop()), 1)
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines else []
        out = [r for r in (render(line) for line in lines) if r is not None]
        if out:
            write(b"".join(out))
        if not follow:
            return
        pending = b""
        while alive():
            chunk = f.read(65536)
            if not chunk:
                time.sleep(0.1)
                continue
            pending += chunk
            *complete, pending = pending.split(b"\n")
            out = [r for r in (render(line) for line in complete) if r is not None]
            if out:
                write(b"".join(out))
