"""The request to trace: `--trace URL [--header K:V ...] [--method M]` as a frozen object."""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Iterable

from kubectl_mesh.errors import UsageError

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclasses.dataclass(frozen=True)
class TraceRequest:
    """What the client sends. `headers` are lower-cased names (pseudo headers not included)."""

    url: str
    method: str
    scheme: str  # http | https
    host: str  # the Host / :authority header as sent (with a port only if the URL had one)
    port: int  # the port the client connects to (URL port, else 80/443 by scheme)
    path: str  # :path, with the query string
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def path_only(self) -> str:
        """`:path` without the query string (what path, regex and path_separated_prefix use)."""
        return self.path.split("?", 1)[0].split("#", 1)[0]

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, first value wins (as Envoy's query_parameters matcher sees them)."""
        _, _, q = self.path.partition("?")
        out: dict[str, str] = {}
        for key, value in urllib.parse.parse_qsl(q, keep_blank_values=True):
            out.setdefault(key, value)
        return out

    @property
    def sni(self) -> str:
        """The TLS server name a client would send: the host without port (https only)."""
        return split_host_port(self.host)[0] if self.scheme == "https" else ""

    def header(self, name: str) -> str | None:
        """A request header by (case-insensitive) name, pseudo headers included; None if absent."""
        name = name.lower()
        pseudo = {":authority": self.host, "host": self.host, ":method": self.method,
                  ":path": self.path, ":scheme": self.scheme}
        if name in pseudo:
            return pseudo[name]
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def to_dict(self) -> dict:
        return {"url": self.url, "method": self.method, "scheme": self.scheme, "host": self.host,
                "port": self.port, "path": self.path, "headers": dict(self.headers)}


def parse_header(text: str) -> tuple[str, str]:
    """`K:V` or `K: V` → (k lower-cased, V); UsageError when there is no colon or no name."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise UsageError(f"bad --header {text!r}; expected NAME:VALUE, e.g. x-user:alice")
    return name.strip().lower(), value.strip()


def parse_request(url: str, headers: Iterable[str | tuple[str, str]] = (),
                  method: str = "GET") -> TraceRequest:
    """`http://host[:port]/path?q` (scheme optional, default http) → TraceRequest.

    A `Host` header overrides the URL's authority for routing (not the port connected to)."""
    if not url.strip():
        raise UsageError("--trace needs a URL; got an empty one",
                         hint="e.g. --trace http://catalog.example.com/items")
    text = url if "://" in url else "http://" + url
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as e:  # e.g. "Invalid IPv6 URL" for http://[::1
        raise UsageError(f"--trace {url!r} is not a URL: {e}",
                         hint="e.g. http://catalog.example.com/items or http://[::1]:8080/") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UsageError(f"--trace {url!r}: scheme {scheme!r} is not http or https")
    if not parts.hostname:
        raise UsageError(f"--trace {url!r} has no host; expected e.g. http://catalog.example.com/items")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"--trace {url!r}: bad port", hint="a port is 1-65535") from None
    host = parts.netloc.rsplit("@", 1)[-1].lower()
    if port == DEFAULT_PORTS[scheme]:
        host = split_host_port(host)[0]  # clients leave the default port out of Host
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    pairs = [parse_header(h) if isinstance(h, str) else (h[0].lower(), h[1]) for h in headers]
    for name, value in pairs:
        if name in ("host", ":authority"):
            host = value.lower()
    rest = tuple((n, v) for n, v in pairs if n not in ("host", ":authority"))
    return TraceRequest(url, method.upper(), scheme, host,
                        port if port is not None else DEFAULT_PORTS[scheme], path, rest)


def split_host_port(host: str) -> tuple[str, int | None]:
    """`a.b:80` → (`a.b`, 80); `[::1]:80` → (`[::1]`, 80); no port → (host, None)."""
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1:]
        if rest.startswith(":") and rest[1:].isdigit():
            return host[:end + 1], int(rest[1:])
        return host, None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, int(port)
    return host, None
