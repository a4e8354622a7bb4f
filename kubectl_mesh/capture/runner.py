"""A sniff run: every pod's capture at once (bounded), into one sink, until a limit, the end
of every tcpdump, Ctrl-C, SIGTERM, SIGHUP or a closed viewer - then cleanup, always."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from kubectl_mesh.capture.backends import LeftBehind
from kubectl_mesh.capture.options import SniffOptions
from kubectl_mesh.capture.podcapture import PodCapture
from kubectl_mesh.capture.tcpdump import buffer_per_pod
from kubectl_mesh import signals
from kubectl_mesh.errors import ExitCode, MeshError

JOIN_TIMEOUT = 10.0
_SIGNAL_REASON = {signal.SIGINT: "Ctrl-C"}
COUNT_GRACE = 2.0  # after --count: how long tcpdumps may take to report and exit


@dataclass
class Totals:
    packets: int = 0
    bytes: int = 0
    per_pod: dict = field(default_factory=dict)


class CaptureRun:
    """Owns the pod captures, the sink and the stop conditions."""

    def __init__(self, api, pods: list, pod_jsons: list[dict], opts: SniffOptions, sink,
                 stderr: IO[str], *, notices=None):
        if opts.buffer_bytes is None:  # the default ring budget is shared by the pods
            opts = dataclasses.replace(opts, buffer_bytes=buffer_per_pod(len(pods)))
        self.opts, self.sink, self.stderr = opts, sink, stderr
        self.totals = Totals()
        self.stop_reason = ""
        self._streaming_since: float | None = None  # when the first tcpdump's output began
        self._stop = threading.Event()
        self._enough = threading.Event()  # --count reached: no more packets, tcpdump ending
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(max(1, opts.concurrency))
        self.captures = [PodCapture(api, p, j, opts, self._on_header, self._on_records,
                                    notices=notices)
                         for p, j in zip(pods, pod_jsons)]

    # -- packets ------------------------------------------------------------------------
    def _on_header(self, capture: PodCapture, header) -> None:
        with self._lock:
            if self._streaming_since is None:
                self._streaming_since = time.monotonic()
            self.sink.add_pod(capture.key, header, f"{capture.pod.name}/{capture.pod.namespace}",
                              f"{capture.backend.mode} {capture.backend.where} "
                              f"-i {self.opts.interface}")

    def _on_records(self, capture: PodCapture, records) -> None:
        with self._lock:
            for record in records:
                if self._stop.is_set() or self._enough.is_set():
                    return
                size = len(record.raw)
                if self.opts.max_size and self.totals.bytes + size > self.opts.max_size:
                    return self._halt("--max-size reached")
                try:
                    written = self.sink.write(capture.key, record)
                except (BrokenPipeError, ValueError, OSError):
                    return self._halt("the viewer closed its input")
                self.totals.packets += 1
                self.totals.bytes += written
                self.totals.per_pod[capture.key] = self.totals.per_pod.get(capture.key, 0) + 1
                if self.opts.count and self.totals.packets >= self.opts.count:
                    # tcpdump -c stops by itself and reports its count: give it a moment.
                    self.stop_reason = f"--count {self.opts.count} reached"
                    self._enough.set()
                    return

    def _halt(self, reason: str) -> None:
        if not self._stop.is_set():
            self.stop_reason = self.stop_reason or reason
            self._stop.set()
            for capture in self.captures:
                capture.stop()

    # -- the run ------------------------------------------------------------------------
    def _run_one(self, capture: PodCapture) -> None:
        with self._slots:
            if not self._stop.is_set():
                capture.run()

    def run(self) -> int:
        """Capture until done; cleanup on every path. Returns the exit code.

        Ctrl-C, SIGTERM and SIGHUP are held off for the whole run (`signals.deferred`): one
        stops every pod's tcpdump, cleanup runs (a second one waits for it), and then it is
        raised as the common signal rule would have, for `cli.common.run` to exit 128 + the
        signal number. (Raised at once, it could land inside a lock's release in a threading
        primitive this thread waits on, or in the middle of the cleanup.)
        """
        threads = [threading.Thread(target=self._run_one, args=(c,), daemon=True,
                                    name=f"sniff-{c.key}") for c in self.captures]
        started = time.monotonic()
        with signals.deferred() as received:
            try:
                for t in threads:
                    t.start()
                self._wait(threads, received)
            finally:
                self._halt(self.stop_reason or "done")
                for t in threads:
                    t.join(JOIN_TIMEOUT)
                notes = []
                for capture in self.captures:
                    notes += capture.cleanup()
                failed = any(c.error is not None for c in self.captures)
                with contextlib.suppress(OSError, ValueError):
                    if failed and self.totals.packets == 0:
                        self.sink.discard()  # a capture that did not happen leaves no file
                    else:
                        self.sink.close()
                self._report(notes, time.monotonic() - started)
        left = [e for c in self.captures for e in c.left_behind]
        if left:  # worse than any other outcome: it goes first, whatever ended the run
            raise _left_behind(left)
        signals.reraise(received)
        errors = [c.error for c in self.captures if c.error is not None]
        if errors and len(errors) == len(self.captures):
            raise errors[0] if isinstance(errors[0], MeshError) else \
                MeshError(f"capture failed: {errors[0]}")
        return ExitCode.FAILURE if errors else ExitCode.OK

    def _wait(self, threads: list[threading.Thread], received: list[int]) -> None:
        """Until every capture ended, a limit is reached or a signal came. --duration counts
        from the first packet stream (setting up a debug container can take a while)."""
        progress = _Progress(self, self.stderr)
        while any(t.is_alive() for t in threads) and not self._stop.is_set():
            if received:
                self._halt(_SIGNAL_REASON.get(received[0], signal.Signals(received[0]).name))
                break
            if self.opts.duration and self._streaming_since is not None and \
                    time.monotonic() >= self._streaming_since + self.opts.duration:
                self._halt("--duration reached")
                break
            if self._enough.is_set():
                grace_end = time.monotonic() + COUNT_GRACE
                for t in threads:
                    t.join(max(0.0, grace_end - time.monotonic()))
                break
            self._stop.wait(0.1)
            progress.tick()
        progress.done()

    def _report(self, notes: list[str], elapsed: float) -> None:
        say = lambda line: _say(self.stderr, line)  # noqa: E731
        for capture in self.captures:
            if capture.error is not None and len(self.captures) > 1:
                say(f"{capture.key}: error: {capture.error}")
            if capture.backend is None or capture.error is not None:
                continue
            written = self.totals.per_pod.get(capture.key, 0)
            st = capture.stats
            told = (f"tcpdump: {st.captured} packets captured, {st.dropped or 0} dropped by "
                    f"kernel" if st.captured is not None
                    else "tcpdump was stopped before it reported its count")
            say(f"{capture.key}: {written} packets written via {capture.backend.mode} "
                f"({capture.backend.where}); {told}")
        for note in notes:
            say(note)
        if self.totals.packets == 0 and self.captures and \
                all(c.error is not None for c in self.captures):
            return  # nothing was captured: the error says why, no count may look like a result
        rate = self.totals.bytes / elapsed / 1e6 if elapsed > 0 else 0.0
        why = f" ({self.stop_reason})" if self.stop_reason and self.stop_reason != "done" else ""
        say(f"captured {self.totals.packets} packets, {self.totals.bytes} bytes in "
            f"{elapsed:.1f}s ({rate:.2f} MB/s){why}")


def _left_behind(left: list[LeftBehind]) -> LeftBehind:
    """One error for everything cleanup could not undo: what, why, and the commands."""
    if len(left) == 1:
        return left[0]
    return LeftBehind("; ".join(e.message for e in left),
                      hint="; ".join(e.hint for e in left if e.hint))


class _Progress:
    """`\\r1234 packets, 5.6 MB` on a terminal, once a second."""

    def __init__(self, run: CaptureRun, stderr):
        self.run, self.stderr = run, stderr
        self.tty = getattr(stderr, "isatty", lambda: False)()
        self.last = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if self.tty and now - self.last >= 1.0:
            self.last = now
            t = self.run.totals
            _say(self.stderr, f"\r{t.packets} packets, {t.bytes / 1e6:.1f} MB", end="")

    def done(self) -> None:
        if self.tty and self.last:
            _say(self.stderr, "\r\033[K", end="")


def _say(stream, line: str, end: str = "\n") -> None:
    try:
        stream.write(line + end)
        stream.flush()
    except (OSError, ValueError):
        pass
