"""Holding a change for `--for DURATION`: signals that end the hold early, and the countdown.

SIGTERM and SIGHUP become `Terminated` (a BaseException, like KeyboardInterrupt for SIGINT),
so the same `finally` restores the levels whatever ended the wait. While restoring, signals
are deferred: a second Ctrl-C must not leave half the pods at debug.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import IO, Callable, Iterator

ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(BaseException):
    """The process got SIGTERM/SIGHUP; `exit_code` is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def ending_signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM/SIGHUP raise `Terminated` in the main thread."""
    if not _in_main_thread():  # handlers can only be installed there (e.g. tests in threads)
        yield
        return

    def handler(signum, _frame):
        raise Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in ENDING_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def deferred(say: Callable[[str], None]) -> Iterator[list[int]]:
    """Within the block, SIGINT/SIGTERM/SIGHUP are noted (and told) but do not interrupt;
    yields the list of signals received."""
    received: list[int] = []
    if not _in_main_thread():
        yield received
        return

    def handler(signum, _frame):
        received.append(signum)
        say(f"got {signal.Signals(signum).name} while restoring levels; finishing the restore first")

    signals = (signal.SIGINT,) + ENDING_SIGNALS
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def format_remaining(seconds: float) -> str:
    """`1h02m03s`, `4m59s`, `3s`."""
    whole = max(0, int(seconds + 0.999))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def countdown(seconds: float, stderr: IO[str], *, what: str = "restoring the previous levels",
              sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] = time.monotonic) -> None:
    """Wait `seconds`, showing the time left on stderr: a live `\\r` line on a terminal, else
    one line at the start and one per minute (logs stay short)."""
    tty = bool(getattr(stderr, "isatty", lambda: False)())
    end = clock() + seconds
    stderr.write(f"{what} in {format_remaining(seconds)} (Ctrl-C to restore now)\n")
    stderr.flush()
    last_minute = int(seconds // 60)
    while True:
        left = end - clock()
        if left <= 0:
            break
        if tty:
            stderr.write(f"\r{what} in {format_remaining(left)} \033[K")
            stderr.flush()
        elif int(left // 60) < last_minute:
            last_minute = int(left // 60)
            stderr.write(f"{what} in {format_remaining(left)}\n")
            stderr.flush()
        sleep(min(left, (left % 1.0) or 1.0))  # wake on whole seconds, so the display ticks evenly
    if tty:
        stderr.write("\r\033[K")
        stderr.flush()
