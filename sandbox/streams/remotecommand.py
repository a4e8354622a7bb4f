"""exec and attach: a process's stdin/stdout/stderr over WebSocket channels or SPDY streams.

WebSocket (`v5.channel.k8s.io` for kubectl ≥ 1.30, `v4.channel.k8s.io`): every binary message
starts with a channel byte – 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize; v5 adds
`[255, ch]` (the client closed channel ch, i.e. stdin EOF). The exit Status goes on channel 3,
then we close and wait for the client's close.

SPDY/3.1 (`v4.channel.k8s.io`, kubectl's fallback): the client opens one stream per
`streamtype` (error, stdin, stdout, stderr, resize); the exit Status is written on the error
stream, then FIN.
"""

from __future__ import annotations

import dataclasses
import json
import threading

from . import spdy, upgrade
from .process import FRAME_CHUNK, Run
from .status import StreamError, bad_request
from .websocket import ChannelFramer, WebSocket

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
WS_PROTOCOLS = [V5, V4]
SPDY_PROTOCOLS = [V4]
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
STREAM_WAIT = 30.0  # the kubelet's stream creation timeout
CLIENT_CLOSE_WAIT = 5.0  # after the status: how long the client may take to hang up


@dataclasses.dataclass(frozen=True)
class CommandOptions:
    """The exec/attach query, parsed like the kubelet does."""

    command: tuple[str, ...]
    container: str | None
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> "CommandOptions":
        tty = upgrade.parse_bool(query, "tty")
        opts = cls(command=tuple(query.get("command") or ()),
                   container=(query.get("container") or [None])[-1] or None,
                   stdin=upgrade.parse_bool(query, "stdin"),
                   stdout=upgrade.parse_bool(query, "stdout", True),
                   stderr=upgrade.parse_bool(query, "stderr", True) and not tty,  # a tty merges them
                   tty=tty)
        if not (opts.stdin or opts.stdout or opts.stderr):
            raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
        return opts


def serve_exec(handler, query: dict[str, list[str]], spawn, *, allow_websocket: bool = True) -> None:
    """Run `spawn(command, container, stdin, tty)` and stream it to the client."""
    try:
        opts = CommandOptions.from_query(query)
        if not opts.command:
            raise bad_request("you must specify at least one command for the container")
    except StreamError as e:
        return upgrade.reject(handler, e)
    _serve(handler, opts, lambda: spawn(list(opts.command), opts.container, opts.stdin, opts.tty),
           allow_websocket=allow_websocket, own=True)


def serve_attach(handler, query: dict[str, list[str]], attach, *, allow_websocket: bool = True) -> None:
    """Stream the already running process `attach(container, stdin, tty)` to the client."""
    try:
        opts = CommandOptions.from_query(query)
    except StreamError as e:
        return upgrade.reject(handler, e)
    _serve(handler, opts, lambda: attach(opts.container, opts.stdin, opts.tty),
           allow_websocket=allow_websocket, own=False)


def _serve(handler, opts: CommandOptions, start, *, allow_websocket: bool, own: bool) -> None:
    try:
        up = upgrade.negotiate(handler, WS_PROTOCOLS, SPDY_PROTOCOLS, allow_websocket=allow_websocket)
        try:
            proc, error = start(), None
        except OSError as e:  # e.g. no such executable: reported after the upgrade, like a kubelet
            proc, error = None, e
    except StreamError as e:
        return upgrade.reject(handler, e)
    run = Run(proc, list(opts.command) or None, own=own, start_error=error)
    try:
        upgrade.accept(handler, up)
        if up.transport == upgrade.WEBSOCKET:
            _over_websocket(handler, up.protocol, opts, run)
        else:
            _over_spdy(handler, opts, run)
    except OSError:
        pass
    finally:
        run.cleanup()
        upgrade.hang_up(handler)


def _over_websocket(handler, protocol: str, opts: CommandOptions, run: Run) -> None:
    ws = WebSocket(handler.rfile, handler.connection)

    def read_client():
        while (msg := ws.recv()) is not None:
            if not msg:
                continue
            if msg[0] == STDIN:
                run.write_stdin(msg[1:])
            elif msg[0] == CLOSE and protocol == V5 and msg[1:2] == bytes([STDIN]):
                run.close_stdin()
            # RESIZE: a process without a terminal has nothing to resize
        run.close_stdin()
        run.client_gone.set()

    reader = threading.Thread(target=read_client, name="ws-exec-reader", daemon=True)
    reader.start()
    if run.proc is not None:
        for channel, wanted, pipe in ((STDOUT, opts.stdout, run.proc.stdout),
                                      (STDERR, opts.stderr, run.proc.stderr)):
            if wanted and pipe is not None:
                run.pump_frames(pipe, ChannelFramer(ws, channel, FRAME_CHUNK),
                                f"ws-{'stdout' if channel == STDOUT else 'stderr'}-pump")
    result = run.wait()
    if result is not None:
        try:
            ws.send(bytes([ERROR]) + json.dumps(result).encode())
        except OSError:
            pass
        ws.close()
        reader.join(CLIENT_CLOSE_WAIT)
    upgrade.hang_up(handler)
    reader.join(CLIENT_CLOSE_WAIT)


def _start_output(run: Run, opts: CommandOptions, sender, on_eof=lambda ch: None) -> None:
    if run.proc is None:
        return
    if opts.stdout and run.proc.stdout is not None:
        run.pump(run.proc.stdout, sender(STDOUT), lambda: on_eof(STDOUT), "stdout-pump")
    if opts.stderr and run.proc.stderr is not None:
        run.pump(run.proc.stderr, sender(STDERR), lambda: on_eof(STDERR), "stderr-pump")


def _over_spdy(handler, opts: CommandOptions, run: Run) -> None:
    wanted = {"error"} | {name for name, on in (("stdin", opts.stdin), ("stdout", opts.stdout),
                                                ("stderr", opts.stderr), ("resize", opts.tty)) if on}
    streams: dict[str, spdy.Stream] = {}
    arrived = threading.Condition()

    def on_stream(stream: spdy.Stream) -> None:
        with arrived:
            streams[stream.headers.get("streamtype", "")] = stream
            arrived.notify_all()

    session = spdy.Session(upgrade.RawTransport(handler), on_stream)

    def serve():
        session.serve()
        run.client_gone.set()
        with arrived:
            arrived.notify_all()

    reader = threading.Thread(target=serve, name="spdy-exec-session", daemon=True)
    reader.start()
    try:
        with arrived:
            arrived.wait_for(lambda: wanted <= streams.keys() or session.ended.is_set(), STREAM_WAIT)
        if not wanted <= streams.keys():
            return
        if "stdin" in streams:
            threading.Thread(target=_copy_stdin, args=(streams["stdin"], run),
                             name="spdy-stdin", daemon=True).start()
        by_channel = {STDOUT: streams.get("stdout"), STDERR: streams.get("stderr")}
        _start_output(run, opts, lambda ch: by_channel[ch].write, lambda ch: by_channel[ch].close())
        result = run.wait()
        if result is not None:
            streams["error"].write(json.dumps(result).encode())
            streams["error"].close()
            session.ended.wait(CLIENT_CLOSE_WAIT)
    finally:
        session.close()
        upgrade.hang_up(handler)
        reader.join(CLIENT_CLOSE_WAIT)


def _copy_stdin(stream: spdy.Stream, run: Run) -> None:
    while data := stream.read():
        run.write_stdin(data)
    run.close_stdin()
