"""The one rule for the signals that end a command: SIGINT, SIGTERM and SIGHUP.

`cli.common.run` installs `raising()` around every command: SIGINT raises KeyboardInterrupt
(Python's own handler), SIGTERM and SIGHUP raise `errors.Terminated`, so the same `finally`
blocks clean up whichever arrived - a closed terminal or SSH session (SIGHUP) included - and
`run` exits 128 + the signal number (130, 143, 129). Code that must not be cut short while it
cleans up holds the signals off with `deferred()`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator

from kubectl_mesh.errors import Terminated

ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # raise Terminated
ALL_SIGNALS = (signal.SIGINT,) + ENDING_SIGNALS


def exit_code(signum: int) -> int:
    """The exit status of a command ended by `signum`, after its cleanup."""
    return 128 + signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_terminated(signum, _frame):
    raise Terminated(signum)


@contextlib.contextmanager
def raising() -> Iterator[None]:
    """Within the block, SIGTERM/SIGHUP raise `Terminated` in the main thread (a signal that
    was ignored when the process started, e.g. SIGHUP under nohup, stays ignored)."""
    if not _in_main_thread():  # handlers can only be installed there (e.g. tests in threads)
        yield
        return
    previous = {}
    for s in ENDING_SIGNALS:
        if signal.getsignal(s) is not signal.SIG_IGN:
            previous[s] = signal.signal(s, _raise_terminated)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def deferred(on_signal: Callable[[int], None] | None = None) -> Iterator[list[int]]:
    """Within the block, SIGINT/SIGTERM/SIGHUP are noted (and passed to `on_signal`) but do not
    interrupt; yields the list of signals received, for the caller to act on afterwards."""
    received: list[int] = []
    if not _in_main_thread():
        yield received
        return

    def handler(signum, _frame):
        received.append(signum)
        if on_signal is not None:
            on_signal(signum)

    previous = {s: signal.signal(s, handler) for s in ALL_SIGNALS
                if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def reraise(received: list[int]) -> None:
    """Raise what the first signal in `received` (from `deferred()`) would have raised."""
    if not received:
        return
    if received[0] == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(received[0])
