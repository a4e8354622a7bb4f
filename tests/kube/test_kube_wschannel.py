"""The port-forward WebSocket used directly as the admin client's socket (`kube.wschannel`),
against a scripted API server on loopback: framing, the port prefixes, pings, fragments,
the error channel and refused upgrades."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from kubectl_mesh.admin import EnvoyAdmin
from kubectl_mesh.errors import ForbiddenError, UnreachableError
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.wschannel import dial
from kubectl_mesh.kube.wsdial import WebSocketForbidden, WebSocketRefused
from sandbox.streams.websocket import (
    OP_BINARY,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    accept_key,
    frame,
    unmask,
)

PORT_PREFIX = struct.pack("<H", 15000)


class ScriptedApiServer:
    """Accepts one connection, reads the upgrade request, then runs `script(conn, request)`."""

    def __init__(self, script):
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.request = b""
        self.seen: list[tuple[int, bytes]] = []  # (opcode, unmasked payload) from the client
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while b"\r\n\r\n" not in self.request:
                self.request += conn.recv(4096)
            self.script(self, conn)

    def upgrade(self, conn, protocol: str = "v4.channel.k8s.io", key: str | None = None) -> None:
        sent_key = next(line.split(":", 1)[1].strip()
                        for line in self.request.decode().split("\r\n")
                        if line.lower().startswith("sec-websocket-key:"))
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {key or accept_key(sent_key)}\r\n"
                      f"Sec-WebSocket-Protocol: {protocol}\r\n\r\n").encode())

    def read_frame(self, conn) -> tuple[int, bytes]:
        head = _exact(conn, 2)
        n = head[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", _exact(conn, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", _exact(conn, 8))[0]
        assert head[1] & 0x80, "a client frame must be masked"
        mask = _exact(conn, 4)
        payload = unmask(_exact(conn, n), mask)
        self.seen.append((head[0] & 0x0F, payload))
        return head[0] & 0x0F, payload

    def close(self) -> None:
        self.thread.join(5)
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes an accept() still waiting
        except OSError:
            pass
        self.listener.close()


def _exact(conn, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _config(port: int) -> ApiConfig:
    return ApiConfig(server=f"http://127.0.0.1:{port}", context="test", namespace="ns",
                     token="s3cret")


def _admin(server: ScriptedApiServer, errors: list[str]) -> EnvoyAdmin:
    cfg = _config(server.port)
    return EnvoyAdmin("port-forward p.ns:15000", "p.ns", timeout=5,
                      connect=lambda: dial(cfg, "ns", "p", 15000, 5, None, errors.append))


def test_body_across_frames_pings_and_fragments():
    body = bytes(range(256)) * 1000  # 256 kB, every byte value

    def script(server, conn):
        server.upgrade(conn)
        conn.sendall(frame(OP_BINARY, b"\x00" + PORT_PREFIX) + frame(OP_BINARY, b"\x01" + PORT_PREFIX))
        opcode, request = server.read_frame(conn)
        assert opcode == OP_BINARY and request.startswith(b"\x00GET /config_dump?mask=x HTTP/1.1")
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        first, middle, rest = answer[:100], answer[100:70_000], answer[70_000:]
        conn.sendall(frame(OP_BINARY, b"\x00" + first))
        conn.sendall(frame(OP_PING, b"hi"))  # answered with a pong in the middle of a body
        # one message in two frames: the continuation carries no channel byte
        conn.sendall(struct.pack("!BB", OP_BINARY, 127) + struct.pack("!Q", len(middle) + 1)
                     + b"\x00" + middle)
        conn.sendall(frame(OP_CONTINUATION, rest))
        assert server.read_frame(conn) == (OP_PONG, b"hi")

    server = ScriptedApiServer(script)
    errors: list[str] = []
    try:
        with _admin(server, errors) as admin:
            resp = admin._request("GET", "/config_dump", {"mask": "x"})
    finally:
        server.close()
    assert resp.status_code == 200 and resp.content == body and errors == []
    request = server.request.decode()
    assert request.startswith("GET /api/v1/namespaces/ns/pods/p/portforward?ports=15000 HTTP/1.1")
    assert "Authorization: Bearer s3cret" in request
    assert "Sec-WebSocket-Protocol: v4.channel.k8s.io" in request


def test_error_channel_ends_the_stream_and_is_reported():
    message = b"error forwarding port 15999 to pod p: connection refused"

    def script(server, conn):
        server.upgrade(conn)
        conn.sendall(frame(OP_BINARY, b"\x00" + PORT_PREFIX) + frame(OP_BINARY, b"\x01" + PORT_PREFIX)
                     + frame(OP_BINARY, b"\x01" + message))
        server.read_frame(conn)  # the request, unanswered

    server = ScriptedApiServer(script)
    errors: list[str] = []
    try:
        with pytest.raises(UnreachableError) as exc, _admin(server, errors) as admin:
            admin.server_info()
    finally:
        server.close()
    assert errors == [message.decode()]
    assert "cannot connect to Envoy admin of p.ns" in str(exc.value)


@pytest.mark.parametrize("status, body, error", [
    (403, (b'{"kind":"Status","message":"pods \\"p\\" is forbidden: User \\"u\\" cannot create '
           b'resource \\"pods/portforward\\" in API group \\"\\" in the namespace \\"ns\\""}'),
     WebSocketForbidden),
    (400, b'{"kind":"Status","message":"websocket not allowed"}', WebSocketRefused),
], ids=["forbidden", "refused"])
def test_refused_upgrades(status, body, error):
    def script(server, conn):
        conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"\r\n" % (status, len(body)) + body)

    server = ScriptedApiServer(script)
    try:
        with pytest.raises(error) as exc:
            dial(_config(server.port), "ns", "p", 15000, 5, None, print)
    finally:
        server.close()
    if error is WebSocketForbidden:  # the caller may still fall back to kubectl's SPDY
        assert isinstance(exc.value.error, ForbiddenError)
        assert "cannot create pods/portforward in namespace ns" in str(exc.value.error)
    else:
        assert "HTTP 400: websocket not allowed" in str(exc.value)


def test_a_foreign_accept_key_is_refused():
    server = ScriptedApiServer(lambda s, conn: s.upgrade(conn, key="bm90IHRoZSBrZXk="))
    try:
        with pytest.raises(WebSocketRefused, match="not a v4.channel.k8s.io WebSocket"):
            dial(_config(server.port), "ns", "p", 15000, 5, None, print)
    finally:
        server.close()


def test_unreachable_api_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once closed
    with pytest.raises(UnreachableError, match="connection refused|Connection refused"):
        dial(_config(port), "ns", "p", 15000, 2, None, print)
