"""`kubectl_mesh.http1` reads answers as `http.client` does (the same status, reason, body,
will_close and errors, by Content-Length, chunked or until close, whole or by read1), checks
what it sends as http.client does, and keeps `email` (http.client's import) out of a command."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading

import pytest

from kubectl_mesh import http1

ANSWERS = {
    "length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
               b"6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
    "until-close": b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
    "close": b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
    "keep-alive-1.0": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    "no-content": b"HTTP/1.1 204 No Content\r\n\r\n",
    "continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "folded": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 0\r\n\r\n",
}
BROKEN = {
    "nothing": b"",
    "not-http": b"garbage\r\n",
    "short-body": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    "short-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc",
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "status-out-of-range": b"HTTP/1.1 42 Odd\r\n\r\n",
    "too-many-headers": b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n",
}


def _answering(raw: bytes) -> tuple[socket.socket, list[bytes]]:
    """A connected socket whose peer reads one request (kept in the list) and answers `raw`."""
    ours, theirs = socket.socketpair()
    seen: list[bytes] = []

    def serve():
        seen.append(theirs.recv(65536))
        theirs.sendall(raw)
        theirs.close()
    threading.Thread(target=serve, daemon=True).start()
    return ours, seen


def _exchange(connection_class, raw: bytes, how: str, method: str = "GET"):
    sock, seen = _answering(raw)
    conn = connection_class("api.example")
    conn.sock = sock
    try:
        conn.request(method, "/path?q=1", headers={"Accept": "*/*"})
        answer = conn.getresponse()
        if how == "read":
            body = answer.read()
        else:
            body = b""
            while piece := answer.read1(3):
                body += piece
        return (answer.status, answer.reason, answer.will_close, body,
                answer.getheader("Content-Length"), answer.getheader("x-a")), seen[0]
    finally:
        sock.close()


@pytest.mark.parametrize("how", ["read", "read1"])
@pytest.mark.parametrize("name", list(ANSWERS))
def test_answers_read_as_http_client_reads_them(name, how):
    ours, ours_sent = _exchange(http1.Connection, ANSWERS[name], how)
    theirs, theirs_sent = _exchange(http.client.HTTPConnection, ANSWERS[name], how)
    assert ours == theirs
    assert ours_sent == theirs_sent  # the same request bytes


def test_a_post_without_a_body_says_content_length_0_as_http_client_does():
    _, ours = _exchange(http1.Connection, ANSWERS["length"], "read", "POST")
    _, theirs = _exchange(http.client.HTTPConnection, ANSWERS["length"], "read", "POST")
    assert ours == theirs and b"Content-Length: 0\r\n" in ours


def _failure(connection_class, raw: bytes):
    try:
        _exchange(connection_class, raw, "read")
    except (http.client.HTTPException, http1.HTTPException) as e:
        return type(e).__name__, str(e), isinstance(e, ConnectionResetError)
    return None


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_answers_fail_as_in_http_client(name):
    ours = _failure(http1.Connection, BROKEN[name])
    assert ours is not None and ours == _failure(http.client.HTTPConnection, BROKEN[name])


@pytest.mark.parametrize("header, value", [("Authorization", "Bearer a\r\nX-Evil: 1"),
                                           ("Bad Name:", "v"), ("X", "a\nb")])
def test_headers_http_client_refuses_are_refused(header, value):
    for connection_class in (http1.Connection, http.client.HTTPConnection):
        conn = connection_class("api.example")
        conn.putrequest("GET", "/")
        with pytest.raises(ValueError):
            conn.putheader(header, value)


def test_control_characters_in_the_target_are_refused():
    with pytest.raises(http1.InvalidURL):
        http1.Connection("api.example").putrequest("GET", "/pods/x y")


def test_a_command_does_not_import_email():
    """http.client imports the email package (~10 ms CPU); the API client and the pod-port
    transport do not."""
    script = ("import sys, kubectl_mesh.kube.api, kubectl_mesh.podhttp, kubectl_mesh.admin; "
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'email' "
              "or m == 'http.client'))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == "[]"
