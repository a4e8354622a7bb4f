"""A cluster's `proxy-url`: the API client and the port-forward WebSockets go through it (a
small HTTP CONNECT proxy on 127.0.0.1 records each tunnel), and a scheme that cannot be used
is one clear line - never a silent direct connection."""

from __future__ import annotations

import socket
import threading
import urllib.parse

import pytest
import yaml

from sandbox.testing import MeshCli, RunningSandbox

GATEWAY = ("deploy/istio-ingressgateway", "-n", "istio-system")


class ConnectProxy:
    """`with ConnectProxy() as proxy:` - `proxy.url`; `proxy.tunnels` lists each CONNECT
    target, in order."""

    def __init__(self):
        self.tunnels: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> ConnectProxy:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone would not
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
            self._spawn(self._tunnel, client)

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        with self._lock:
            self.tunnels.append(f"{method} {target}")
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        with self._lock:
            self._sockets.append(upstream)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self._spawn(_pipe, upstream, client)
        _pipe(client, upstream)


class Socks5Proxy(ConnectProxy):
    """A SOCKS5 proxy (RFC 1928: no authentication, CONNECT to an IPv4 address or a name);
    `proxy.tunnels` lists `CONNECT host:port` for each."""

    def __init__(self):
        super().__init__()
        self.url = "socks5" + self.url[len("http"):]

    def _tunnel(self, client: socket.socket) -> None:
        def read(n: int) -> bytes:
            data = b""
            while len(data) < n:
                chunk = client.recv(n - len(data))
                if not chunk:
                    raise OSError("client went away")
                data += chunk
            return data

        try:
            version, methods = read(2)
            read(methods)
            if version != 5:
                raise OSError("not SOCKS5")
            client.sendall(b"\x05\x00")  # no authentication
            _, command, _, kind = read(4)
            if kind == 1:
                host = socket.inet_ntoa(read(4))
            elif kind == 3:
                host = read(read(1)[0]).decode()
            else:
                raise OSError("address type not supported here")
            port = int.from_bytes(read(2), "big")
            with self._lock:
                self.tunnels.append(f"CONNECT {host}:{port}")
            upstream = socket.create_connection((host, port))
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets.append(upstream)
        client.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("0.0.0.0") + b"\x00\x00")
        self._spawn(_pipe, upstream, client)
        _pipe(client, upstream)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture(scope="module")
def sb(tmp_path_factory, backend):
    with RunningSandbox(tmp_path_factory.mktemp("sb") / "state", backend=backend) as running:
        yield running


@pytest.fixture(scope="module")
def mesh(sb) -> MeshCli:
    return MeshCli(sb)


def with_proxy(sb, tmp_path, proxy_url: str):
    config = yaml.safe_load(sb.kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["proxy-url"] = proxy_url
    path = tmp_path / "kubeconfig-proxied"
    path.write_text(yaml.safe_dump(config))
    server = config["clusters"][0]["cluster"]["server"]
    return path, urllib.parse.urlsplit(server).netloc


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_the_api_and_the_port_forward_go_through_an_http_proxy(sb, mesh, tmp_path):
    with ConnectProxy() as proxy:
        path, server = with_proxy(sb, tmp_path, proxy.url)
        out = mesh("routes", *GATEWAY, env=mesh.env(KUBECONFIG=str(path)))
        tunnels = list(proxy.tunnels)
    assert out.returncode == 0, out.stderr
    assert "catalog.istioinaction.io" in out.stdout
    # the API requests and at least one port-forward WebSocket: all tunnels to the server
    assert len(tunnels) >= 2 and set(tunnels) == {f"CONNECT {server}"}, tunnels


def test_the_api_and_the_port_forward_go_through_a_socks5_proxy(sb, mesh, tmp_path):
    """socks5://: requests speaks it with PySocks, the WebSockets with python-socks (both in
    the `socks` extra); every connection is a tunnel to the API server, none direct."""
    with Socks5Proxy() as proxy:
        path, server = with_proxy(sb, tmp_path, proxy.url)
        out = mesh("routes", *GATEWAY, env=mesh.env(KUBECONFIG=str(path)))
        sync = mesh("sync", "-n", "istioinaction", env=mesh.env(KUBECONFIG=str(path)))
        tunnels = list(proxy.tunnels)
    assert out.returncode == 0, out.stderr
    assert "catalog.istioinaction.io" in out.stdout
    assert sync.returncode == 0, sync.stderr
    assert len(tunnels) >= 4 and set(tunnels) == {f"CONNECT {server}"}, tunnels


def test_an_unusable_scheme_is_one_line_naming_the_cluster(sb, mesh, tmp_path):
    path, _ = with_proxy(sb, tmp_path, "ftp://127.0.0.1:1")
    out = mesh("routes", *GATEWAY, env=mesh.env(KUBECONFIG=str(path)))
    assert out.returncode == 6, out.stderr
    line = error_line(out.stderr)
    assert "unsupported scheme 'ftp', must be http, https, or socks5" in line
    assert 'cluster "sandbox"' in line


def test_a_proxy_that_is_down_is_named_never_bypassed(sb, mesh, tmp_path):
    for proxy_url in ("http://127.0.0.1:1", "https://127.0.0.1:1"):
        path, _ = with_proxy(sb, tmp_path, proxy_url)
        out = mesh("routes", *GATEWAY, env=mesh.env(KUBECONFIG=str(path)))
        assert out.returncode == 5, out.stderr
        assert f"through the proxy {proxy_url}" in error_line(out.stderr)
        assert "catalog.istioinaction.io" not in out.stdout


def test_the_websockets_refuse_an_https_proxy_in_one_line():
    from kubectl_mesh.errors import BadInputError
    from kubectl_mesh.kube.kubeconfig import ApiConfig
    from kubectl_mesh.kube.wsdial import proxy_options

    config = ApiConfig(server="https://10.0.0.1:6443", context="x", namespace="default",
                       cluster="c", proxy_url="https://user:pw@proxy:3128")
    with pytest.raises(BadInputError) as info:
        proxy_options(config)
    assert "cannot go through" in info.value.message and "pw" not in info.value.message
    http = ApiConfig(server="https://10.0.0.1:6443", context="x", namespace="default",
                     cluster="c", proxy_url="http://proxy:3128")
    assert proxy_options(http)["http_proxy_host"] == "proxy"


def test_a_socks5_proxy_without_its_python_package_names_the_package(monkeypatch):
    import importlib.util

    from kubectl_mesh.errors import ExitCode, ToolMissingError
    from kubectl_mesh.kube.api import proxies_for
    from kubectl_mesh.kube.kubeconfig import ApiConfig
    from kubectl_mesh.kube.wsdial import proxy_options

    config = ApiConfig(server="https://10.0.0.1:6443", context="x", namespace="default",
                       cluster="c", proxy_url="socks5://127.0.0.1:1080")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ToolMissingError) as info:
        proxies_for(config)
    assert "'PySocks'" in info.value.message and info.value.exit_code == ExitCode.TOOL_MISSING
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "python_socks" else object())
    with pytest.raises(ToolMissingError) as info:
        proxy_options(config)
    assert "'python-socks'" in info.value.message


def test_completion_goes_through_the_proxy(sb, tmp_path):
    """`kubectl_complete-mesh-*` reads names with the API client: through the proxy-url too
    (never around it, and not silently without names)."""
    from kubectl_mesh.cli.completion import cluster_lister

    with ConnectProxy() as proxy:
        path, target = with_proxy(sb, tmp_path, proxy.url)
        list_names, _ = cluster_lister(str(path), None, env={})
        names = list_names("api/v1/pods", "istio-system")
    assert sorted(names) == sorted(p["metadata"]["name"] for p in sb.pods("istio-system"))
    assert proxy.tunnels and set(proxy.tunnels) == {f"CONNECT {target}"}
