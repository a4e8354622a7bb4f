"""The exec stream's fast paths: the server's `ChannelFramer` (pipe -> one WebSocket message
per read, no copies) and the client's `FrameReader` (frames straight off the socket)."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from kubectl_mesh.kube.execstream import ExecStream
from kubectl_mesh.kube.wsframes import FrameReader
from sandbox.streams.process import PIPE_SIZE, widen_pipe
from sandbox.streams.websocket import ChannelFramer, WebSocket, frame

pytestmark = pytest.mark.timeout(30)


def _frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    raw = frame(opcode, payload)
    return raw if fin else bytes([raw[0] & 0x7F]) + raw[1:]


class Trickle:
    """A socket-like object that hands out `data` a few bytes per recv_into."""

    def __init__(self, data: bytes, step: int):
        self.data, self.step, self.pos = data, step, 0

    def recv_into(self, view) -> int:
        n = min(self.step, len(view), len(self.data) - self.pos)
        view[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


@pytest.mark.parametrize("step", [1, 7, 1 << 20], ids=["byte-by-byte", "odd-chunks", "all"])
def test_frame_reader_parses_every_length_encoding_and_fragments(step):
    big = os.urandom(70_000)  # 127-length encoding, and bigger than the reader's buffer
    stream = (_frame(0x2, b"\x01hello") + _frame(0x2, b"\x01" + b"m" * 300)
              + _frame(0x2, b"\x01" + big) + _frame(0x2, b"\x02part one ", fin=False)
              + _frame(0x9, b"ping") + _frame(0x0, b"part two") + _frame(0x8, b"\x03\xe8"))
    reader = FrameReader(Trickle(stream, step), size=4096)
    got = []
    while True:
        fin, opcode, payload = reader.next_frame()
        got.append((fin, opcode, bytes(payload)))
        if opcode == 0x8:
            break
    assert got == [(True, 2, b"\x01hello"), (True, 2, b"\x01" + b"m" * 300),
                   (True, 2, b"\x01" + big), (False, 2, b"\x02part one "), (True, 9, b"ping"),
                   (True, 0, b"part two"), (True, 8, b"\x03\xe8")]
    with pytest.raises(EOFError):
        reader.next_frame()


def test_channel_framer_sends_each_read_as_one_message_with_its_channel():
    server, client = socket.socketpair()
    r, w = os.pipe()
    widen_pipe(r)  # the 100 kB chunk is written before the framer reads it
    try:
        ws = WebSocket(None, server)
        framer = ChannelFramer(ws, 1, 256 * 1024)
        chunks = [b"a" * 10, b"b" * 200, os.urandom(100_000)]
        received = []

        def read_all():
            reader = FrameReader(client)
            for _ in chunks:
                fin, opcode, payload = reader.next_frame()
                received.append((fin, opcode, bytes(payload)))

        t = threading.Thread(target=read_all)
        t.start()
        for chunk in chunks:  # one write, one read: the framer must not merge or split
            os.write(w, chunk)
            assert framer.pump_once(r)
        t.join(10)
        assert received == [(True, 2, b"\x01" + c) for c in chunks]
        os.close(w)
        w = -1
        assert framer.pump_once(r) is False  # EOF
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
        server.close()
        client.close()


def test_widened_pipe_holds_a_megabyte_without_a_reader():
    import fcntl
    r, w = os.pipe()
    try:
        widen_pipe(w)
        assert fcntl.fcntl(w, getattr(fcntl, "F_GETPIPE_SZ", 1032)) == PIPE_SIZE
        os.set_blocking(w, False)
        assert os.write(w, b"x" * (PIPE_SIZE // 2)) == PIPE_SIZE // 2  # 64 KiB would block
    finally:
        os.close(r)
        os.close(w)


def test_frame_reader_refuses_masked_server_frames():
    masked = bytes([0x82, 0x80 | 3]) + b"\x00\x00\x00\x00" + b"abc"
    with pytest.raises(Exception, match="masked"):
        FrameReader(Trickle(masked, 64)).next_frame()


class _FakeWebSocket:
    subprotocol = "v5.channel.k8s.io"
    pending = b""

    def __init__(self, data: bytes):
        self.sock = Trickle(data, 5)
        self.pongs = []

    def pong(self, payload: bytes) -> None:
        self.pongs.append(payload)


def test_exec_stream_routes_fragments_by_the_first_fragments_channel():
    status = (b'{"kind":"Status","status":"Failure","reason":"NonZeroExitCode",'
              b'"details":{"causes":[{"reason":"ExitCode","message":"3"}]}}')
    ws = _FakeWebSocket(_frame(0x2, b"\x01out-1 ", fin=False) + _frame(0x9, b"hi")
                        + _frame(0x0, b"out-2") + _frame(0x2, b"\x02err")
                        + _frame(0x2, b"\x03" + status[:20], fin=False)
                        + _frame(0x0, status[20:]) + _frame(0x8, b""))
    out, err = bytearray(), bytearray()
    result = ExecStream(ws, "exec in pod x.ns").run(out.extend, err.extend)
    assert (bytes(out), bytes(err)) == (b"out-1 out-2", b"err")
    assert result is not None and result.code == 3
    assert ws.pongs == [b"hi"]
