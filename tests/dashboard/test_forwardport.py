"""`ForwardedPort`: a local port piped to a channel's connections (here a plain TCP echo
server stands in for the pod port), closed at once with its pipes, errors reported."""

from __future__ import annotations

import socket
import threading

import pytest

from kubectl_mesh.errors import UsageError
from kubectl_mesh.kube.forwardport import ForwardedPort, listen_address, url_host


class EchoChannel:
    """connect() → a TCP connection to an echo server; `fail` makes connect() raise."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.fail: str | None = None
        self.connections = 0
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self._accepted.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass  # closed by close()

    def connect(self):
        if self.fail:
            raise ConnectionError(self.fail)
        self.connections += 1
        return socket.create_connection(self.server.getsockname())

    def errors(self):
        return []

    def close(self):
        """Stop accepting (shutdown wakes the blocked accept; close alone would leave the
        port listening for that thread) and end the echoes."""
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self._thread.join(5)
        for conn in self._accepted:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def channel():
    ch = EchoChannel()
    yield ch
    ch.close()


def _roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            assert chunk, "closed early"
            got += chunk
        return got


def test_connections_are_piped_both_ways(channel):
    with ForwardedPort(channel) as local:
        big = bytes(range(256)) * 8192  # 2 MiB
        assert _roundtrip(local.local_port, big) == big
        assert _roundtrip(local.local_port, b"again") == b"again"
    assert channel.connections == 2


def test_close_closes_the_port_and_ends_open_connections(channel):
    local = ForwardedPort(channel).start()
    client = socket.create_connection(("127.0.0.1", local.local_port), timeout=5)
    client.sendall(b"x")
    assert client.recv(1) == b"x"
    local.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", local.local_port), timeout=2)
    assert client.recv(1) == b""  # the open pipe was ended too
    client.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("kubectl-mesh-forward")]


def test_a_connection_the_channel_cannot_carry_is_reported(channel):
    said: list[str] = []
    channel.fail = "pod catalog-x.istioinaction is gone"
    with ForwardedPort(channel, on_error=said.append) as local:
        with socket.create_connection(("127.0.0.1", local.local_port), timeout=5) as s:
            assert s.recv(1) == b""  # closed: nothing to pipe to
    assert said == ["pod catalog-x.istioinaction is gone"]


def test_a_busy_port_is_a_usage_error(channel):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1 port {port}"):
            ForwardedPort(channel, port=port).start()


@pytest.mark.parametrize("text, address, host", [
    ("localhost", "127.0.0.1", "127.0.0.1"), ("127.0.0.2", "127.0.0.2", "127.0.0.2"),
    ("::1", "::1", "[::1]"), ("[::1]", "::1", "[::1]"), ("0.0.0.0", "0.0.0.0", "127.0.0.1"),
], ids=["localhost", "ipv4", "ipv6", "bracketed", "any"])
def test_addresses(text, address, host):
    assert listen_address(text) == address
    assert url_host(address) == host


def test_a_host_name_is_not_an_address():
    with pytest.raises(UsageError, match="give an IP address or localhost"):
        listen_address("example.com")
