"""`EnvoyAdmin.stream`: the answer is handed over as it arrives (the first piece is read while
the server still holds the rest back), non-200 answers are one-line `AdminError`s."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kubectl_mesh.admin import EnvoyAdmin
from kubectl_mesh.errors import AdminError, UnreachableError


@pytest.fixture
def server():
    """An admin double: /slow sends a chunk, then the rest once `release` is set."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            if self.path == "/big":
                piece = b"x" * (1024 * 1024)
                self.send_response(200)
                self.send_header("Content-Length", str(32 * len(piece)))
                self.end_headers()
                for _ in range(32):
                    self.wfile.write(piece)
            elif self.path == "/slow":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in (b'{"first": 1', b', "second": 2}'):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                    if not release.wait(10):
                        return
                self.wfile.write(b"0\r\n\r\n")
            else:
                body = b"invalid path. admin commands are:\n  /certs: print certs\n"
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], release
    release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_the_first_piece_arrives_before_the_server_sends_the_rest(server):
    port, release = server
    with EnvoyAdmin(f"http://127.0.0.1:{port}", "p.ns", timeout=5) as admin:
        with admin.stream("GET", "/slow") as answer:
            assert answer.content_type == "application/json"
            pieces = answer.chunks()
            assert next(pieces) == b'{"first": 1'  # the server is still waiting for `release`
            release.set()
            assert b"".join(pieces) == b', "second": 2}'


def test_a_non_200_answer_is_one_line_with_envoys_text(server):
    port, _ = server
    with EnvoyAdmin(f"http://127.0.0.1:{port}", "p.ns", timeout=5) as admin:
        with pytest.raises(AdminError) as caught:
            with admin.stream("GET", "/nope?x=1"):
                pass
    assert caught.value.status == 404
    assert str(caught.value) == "Envoy admin of p.ns answered 404 to GET /nope?x=1: invalid path."


def test_a_closed_port_is_unreachable_naming_the_pod():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    with EnvoyAdmin(f"http://127.0.0.1:{port}", "p.ns", timeout=5) as admin:
        with pytest.raises(UnreachableError, match="p.ns"):
            with admin.stream("GET", "/stats"):
                pass


def test_a_32_mib_answer_goes_to_stdout_without_being_held(server):
    """The whole path of `kubectl mesh admin` into a pipe: stream → write_raw. Python's own
    allocations stay far below the answer's size (tracemalloc's peak)."""
    import io
    import tracemalloc

    from kubectl_mesh.adminapi.render import write_raw

    class Sink(io.RawIOBase):
        size = 0

        def writable(self):
            return True

        def write(self, b):
            self.size += len(b)
            return len(b)

    sink = Sink()
    stdout = io.TextIOWrapper(io.BufferedWriter(sink), encoding="utf-8")
    port, _ = server
    with EnvoyAdmin(f"http://127.0.0.1:{port}", "p.ns", timeout=10) as admin:
        tracemalloc.start()
        try:
            with admin.stream("GET", "/big") as answer:
                written = write_raw(answer.chunks(), stdout)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert written == sink.size == 32 * 1024 * 1024
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"
