"""Holding a change for `--for DURATION`: signals that end the hold early, and the countdown.

SIGTERM and SIGHUP become `Terminated` (the common rule of `kubectl_mesh.signals`: a
BaseException, like KeyboardInterrupt for SIGINT), so the same `finally` restores the levels
whatever ended the wait. While restoring, signals are deferred: a second Ctrl-C must not leave
half the pods at debug.
"""

from __future__ import annotations

import contextlib
import signal
import time
from typing import IO, Callable, Iterator

from kubectl_mesh import signals
from kubectl_mesh.errors import Terminated

__all__ = ["Terminated", "countdown", "deferred", "ending_signals_raise", "format_remaining"]

# The common rule (kubectl_mesh.signals), which `cli.common.run` installs for every command;
# installed here too so that the hold works the same when called without the runner.
ending_signals_raise = signals.raising


@contextlib.contextmanager
def deferred(say: Callable[[str], None]) -> Iterator[list[int]]:
    """Within the block, SIGINT/SIGTERM/SIGHUP are noted (and told) but do not interrupt;
    yields the list of signals received."""
    def tell(signum: int) -> None:
        say(f"got {signal.Signals(signum).name} while restoring levels; finishing the restore first")

    with signals.deferred(tell) as received:
        yield received


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
    """Wait `seconds`, showing the time left on stderr: on a terminal one live line, rewritten
    in place (`\\r`) and cleared at the end; else one line at the start and one per minute
    (logs stay short). Whatever stdout is, the line is there once."""
    tty = bool(getattr(stderr, "isatty", lambda: False)())
    end = clock() + seconds
    if not tty:
        stderr.write(f"{what} in {format_remaining(seconds)} (Ctrl-C to restore now)\n")
        stderr.flush()
    last_minute = int(seconds // 60)
    while True:
        left = end - clock()
        if left <= 0:
            break
        if tty:
            stderr.write(f"\r{what} in {format_remaining(left)} (Ctrl-C to restore now)\033[K")
            stderr.flush()
        elif int(left // 60) < last_minute:
            last_minute = int(left // 60)
            stderr.write(f"{what} in {format_remaining(left)}\n")
            stderr.flush()
        sleep(min(left, (left % 1.0) or 1.0))  # wake on whole seconds, so the display ticks evenly
    if tty:
        stderr.write("\r\033[K")
        stderr.flush()
