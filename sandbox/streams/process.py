"""The process side of one exec/attach: output pumps, stdin, the exit status and cleanup."""

from __future__ import annotations

import fcntl
import subprocess
import threading
from typing import Callable

from . import status

CHUNK = 64 * 1024
FRAME_CHUNK = 256 * 1024  # one read, one WebSocket message: few syscalls and TLS record runs
PIPE_SIZE = 1 << 20  # the default /proc/sys/fs/pipe-max-size
DRAIN_TIMEOUT = 5.0  # after exit, how long output may keep coming (children holding the pipe)


class Run:
    """Wires a Popen-like object to a transport's send functions.

    `own` says the process is ours (exec). When the client leaves, a real kubelet does not
    kill it (kubernetes/kubernetes#89031, kubectl#1076): it sees EOF on stdin, nobody reads
    its output any more (a writer blocks once the pipe is full), and it lives until it ends
    by itself or its container stops. So here. An attached process (not ours) is only
    detached via its optional `close()`.
    """

    def __init__(self, proc, command: list[str] | None, *, own: bool,
                 start_error: Exception | None = None):
        self.proc = proc
        self.command = command
        self.own = own
        self.start_error = start_error
        self.client_gone = threading.Event()
        self._pumps: list[threading.Thread] = []
        self._stdin_lock = threading.Lock()
        self._stdin_broken = False

    def pump(self, stream, send: Callable[[bytes], None],
             on_eof: Callable[[], None] | None = None, name: str = "pump") -> None:
        """Copy `stream` to `send` in a thread until EOF or the client is gone."""
        read = getattr(stream, "read1", None) or stream.read

        def run():
            try:
                while True:
                    data = read(CHUNK)
                    if not data or self.client_gone.is_set():  # gone: nobody reads any more
                        break
                    send(data)
                if on_eof:
                    on_eof()
            except (OSError, ValueError):  # client gone, or the pipe was closed under us
                pass

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._pumps.append(thread)

    def pump_frames(self, stream, framer, name: str = "pump") -> None:
        """Copy `stream`'s pipe to a `websocket.ChannelFramer` in a thread: raw `os.readv` into
        the framer's buffer, bypassing `stream`'s own buffer (nothing else reads it)."""
        fd = stream.fileno()
        widen_pipe(fd)

        def run():
            try:
                while framer.pump_once(fd) and not self.client_gone.is_set():
                    pass
            except (OSError, ValueError):  # client gone, or the pipe was closed under us
                pass

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._pumps.append(thread)

    def write_stdin(self, data: bytes) -> None:
        """Feed the process; data after it stopped reading is dropped like a closed pipe's."""
        stdin = self.proc.stdin if self.proc is not None else None
        if stdin is None or self._stdin_broken:
            return
        with self._stdin_lock:
            try:
                stdin.write(data)
                stdin.flush()
            except (OSError, ValueError):
                self._stdin_broken = True

    def close_stdin(self) -> None:
        stdin = self.proc.stdin if self.proc is not None else None
        if stdin is None:
            return
        with self._stdin_lock:
            self._stdin_broken = True
            try:
                stdin.close()
            except (OSError, ValueError):
                pass

    def wait(self) -> dict | None:
        """Block until the process exits (→ its Status) or the client leaves (→ None)."""
        if self.proc is None:
            return status.internal(f"error executing command in container: {self.start_error}")
        while not self.client_gone.is_set():
            try:
                code = self.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            for thread in self._pumps:  # the rest of the output goes before the status
                thread.join(DRAIN_TIMEOUT)
            code = status.returncode_to_exit(code)
            return status.success() if code == 0 else status.exit_code(code, self.command)
        return None

    def cleanup(self) -> None:
        """The client is gone: close stdin (ours) or detach (attached); our pipes are closed
        once the process has ended and its output pumps with it."""
        self.client_gone.set()
        if self.proc is None:
            return
        self.close_stdin()
        if self.own:
            if self.proc.poll() is None:  # left running, like a kubelet leaves it
                threading.Thread(target=self._reap, daemon=True, name="exec-reaper").start()
                return
        else:
            detach = getattr(self.proc, "close", None)
            if detach:
                detach()
        self._release_pipes()

    def _reap(self) -> None:
        """Wait for a process the client left behind, then release our ends of its pipes."""
        self.proc.wait()
        self._release_pipes()

    def _release_pipes(self) -> None:
        """Let the output pumps finish, then close our ends of an exec'd process's pipes."""
        for thread in self._pumps:
            thread.join(DRAIN_TIMEOUT)
        if self.own and not any(t.is_alive() for t in self._pumps):
            # (a pipe still held by an orphaned grandchild stays open with its pump: closing
            # it under a reading thread would block on the reader's lock)
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()


def widen_pipe(fd: int, size: int = PIPE_SIZE) -> None:
    """Let the writer run up to `size` bytes ahead (default 64 KiB): a producer that writes in
    bursts - tcpdump -U writes each packet, up to 64 KiB on loopback - then never waits for a
    reader wake-up per write, and one read drains many writes. Best effort (not a pipe, or
    above the system's pipe-max-size: unchanged)."""
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except OSError:
        pass
