"""Opening a channel WebSocket to a pod subresource (`portforward`, `exec`, `attach`): the TCP
connection (direct, or through the cluster's proxy: HTTP CONNECT or SOCKS), TLS with the
kubeconfig's context and a resumed session, the upgrade request with the credentials, and
the 101 answer checked. Transport failures get the API client's wording
(`api.transport_error`); an answer other than 101 is `UpgradeRefused`, for the caller to
translate (a port-forward falls back to kubectl, an exec says the runtime's message).
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
from typing import Iterable
from urllib.parse import urlsplit

from kubectl_mesh.errors import BadInputError
from kubectl_mesh.kube.api import _needs_module, proxies_for, status_error, transport_error
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.kubeconfigcheck import redact
from kubectl_mesh.kube.wsframes import WebSocket

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 4.2.2
_MAX_HEAD = 64 * 1024  # an upgrade answer's headers; more is not an API server


class UpgradeRefused(Exception):
    """The server answered the upgrade with `status` (not 101) and `body`."""

    def __init__(self, status: int, body: bytes, message: str = ""):
        super().__init__(message or f"HTTP {status}: {short_message(body)}")
        self.status, self.body = status, body


class WebSocketRefused(Exception):
    """The API server answered the upgrade with something other than 101 (not an auth error)."""


class WebSocketForbidden(WebSocketRefused):
    """RBAC refused the WebSocket upgrade (403). The upgrade is a GET, authorized as `get`, and
    from 1.35 also as `create`; kubectl's SPDY POST needs `create` only, so a Role that lets
    `kubectl port-forward` work may still refuse this path. kubectl falls back to SPDY on any
    failed upgrade (client-go tools/portforward/fallback_dialer.go, kubectl
    pkg/cmd/portforward `shouldFallback`: `IsUpgradeFailure`), and so does the caller."""

    def __init__(self, error):
        super().__init__(f"HTTP 403: {error.message}")
        self.error = error  # the ForbiddenError this 403 means


def port_forward_refusal(refused: UpgradeRefused, path: str, config: ApiConfig) -> Exception:
    """What a refused port-forward upgrade means: 401/404 are errors of their own; any other
    answer (a 403 of RBAC included) lets the caller fall back to kubectl's SPDY."""
    if refused.status in (401, 404):
        return status_error(refused.status, refused.body, "GET", path, config)
    if refused.status == 403 and b"is forbidden" in refused.body:
        return WebSocketForbidden(status_error(403, refused.body, "GET", path, config))
    return WebSocketRefused(str(refused))


def tls_context(config, ctx: ssl.SSLContext | None = None) -> ssl.SSLContext:
    """The kubeconfig's TLS context (`ctx`, else a new one), checking the certificate
    against `tls-server-name`."""
    ctx = ctx if ctx is not None else config.ssl_context()
    if config.tls_server_name:
        ctx.check_hostname = not config.insecure
    return ctx


class TlsReuse:
    """One TLS context for every WebSocket to an API server, and the last TLS session it got:
    the next handshake resumes it (no certificate chain to verify, a fraction of the CPU on
    both ends - each port-forward is a new connection). Shared by threads."""

    def __init__(self, config, context: ssl.SSLContext | None = None):
        """`context`: the kubeconfig's context already built for the same API server
        (`KubeApi.ssl_context`), else one is built here."""
        self.context = context if context is not None else tls_context(config)
        self.session: ssl.SSLSession | None = None


def proxy_options(config: ApiConfig) -> dict:
    """The API server's proxy for the WebSockets: http:// (CONNECT) or socks5:// (with
    python-socks); an https:// proxy they cannot speak is an error, never a direct
    connection. {} when there is none."""
    proxy = proxies_for(config).get("https")
    if not proxy:
        return {}
    parts = urlsplit(proxy)
    if parts.scheme in ("socks5", "socks5h", "socks4", "socks4a"):
        _needs_module("python_socks", "python-socks", config)
    elif parts.scheme != "http":
        raise BadInputError(f"the proxy {redact(proxy)} (cluster {config.cluster!r}) is "
                            f"{parts.scheme}://, which the port-forward and exec WebSockets "
                            "cannot go through", hint="use an http:// or socks5:// proxy-url")
    options = {"http_proxy_host": parts.hostname, "http_proxy_port": parts.port or 8080,
               "proxy_type": parts.scheme, "url": proxy}
    if parts.username:
        options["http_proxy_auth"] = (parts.username, parts.password or "")
    return options


def open_websocket(config: ApiConfig, path: str, query: str, subprotocols: Iterable[str], *,
                   timeout: float | None, tls: TlsReuse | None, doing: str) -> WebSocket:
    """An upgraded connection to `path?query` speaking one of `subprotocols`, or
    UpgradeRefused / UnreachableError / BadInputError (a proxy it cannot use). `doing` says
    what for in messages (" for a port-forward to pod x.ns")."""
    parts = urlsplit(config.server)
    secure = parts.scheme == "https"
    host, server_port = parts.hostname or "", parts.port or (443 if secure else 80)
    offered = list(subprotocols)
    proxy = proxy_options(config)
    if proxy:
        doing += f" through the proxy {redact(proxy['url'])}"
    try:
        sock = _connect(proxy, host, server_port, timeout)
    except OSError as e:
        raise transport_error(e, config.where, timeout, doing=doing) from e
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if secure:
            tls = tls or TlsReuse(config)
            sock = tls.context.wrap_socket(sock, server_hostname=config.tls_server_name or host,
                                           session=tls.session)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {parts.path.rstrip('/')}{path}?{query} HTTP/1.1", f"Host: {parts.netloc}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Protocol: {', '.join(offered)}",
                 "User-Agent: kubectl-mesh"]
        lines += [f"{k}: {v}" for k, v in config.auth_headers()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, headers, rest = _read_answer(sock)
        if secure and sock.session is not None:  # TLS 1.3 tickets come after the handshake
            tls.session = sock.session
        if status != 101:
            raise UpgradeRefused(status, _read_body(sock, headers, rest))
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        chosen = headers.get("sec-websocket-protocol", "")
        if headers.get("sec-websocket-accept") != accept or chosen not in offered:
            raise UpgradeRefused(status, b"", f"the upgrade answer is not a "
                                              f"{' or '.join(offered)} WebSocket")
        sock.settimeout(timeout)
        return WebSocket(sock, chosen, rest)
    except OSError as e:  # TLS failures and timeouts included
        sock.close()
        raise transport_error(e, config.where, timeout, doing=doing) from e
    except BaseException:
        sock.close()
        raise


def _connect(proxy: dict, host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to host:port, through the proxy if there is one (what websocket-client
    did: `_tunnel` for http://, python-socks for socks)."""
    if not proxy:
        return socket.create_connection((host, port), timeout=timeout)
    scheme = proxy["proxy_type"]
    auth = proxy.get("http_proxy_auth")
    if scheme != "http":
        from python_socks import ProxyType
        from python_socks.sync import Proxy

        kind = ProxyType.SOCKS4 if scheme.startswith("socks4") else ProxyType.SOCKS5
        return Proxy.create(kind, proxy["http_proxy_host"], int(proxy["http_proxy_port"]),
                            username=auth[0] if auth else None,
                            password=auth[1] if auth else None,
                            rdns=scheme.endswith(("4a", "5h"))).connect(host, port,
                                                                        timeout=timeout)
    sock = socket.create_connection((proxy["http_proxy_host"], proxy["http_proxy_port"]),
                                    timeout=timeout)
    try:
        request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request += f"Proxy-Authorization: Basic {token}\r\n"
        sock.sendall((request + "\r\n").encode())
        status, _, rest = _read_answer(sock)
        if status != 200 or rest:
            raise ConnectionRefusedError(f"the proxy answered CONNECT with HTTP {status}")
        return sock
    except BaseException:
        sock.close()
        raise


def _read_answer(sock) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, bytes after the blank line) of an HTTP answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > _MAX_HEAD:
            raise ConnectionResetError("the server closed the connection during the upgrade")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        raise UpgradeRefused(0, b"", f"not an HTTP answer: {status_line[:80]!r}") from None
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, rest


def _read_body(sock, headers: dict[str, str], rest: bytes) -> bytes:
    """The (short) body of a refused upgrade, for the error message."""
    try:
        length = min(int(headers.get("content-length", "0")), _MAX_HEAD)
    except ValueError:
        length = 0
    try:
        while len(rest) < length:
            chunk = sock.recv(length - len(rest))
            if not chunk:
                break
            rest += chunk
    except OSError:
        pass
    return rest[:length] if length else rest


def short_message(body: bytes) -> str:
    """A refusal's message: the Status's, else the start of the body."""
    import json

    try:
        return json.loads(body).get("message") or body.decode(errors="replace")[:200]
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200]

