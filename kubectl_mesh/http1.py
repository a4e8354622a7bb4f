"""HTTP/1.1 client connections: what the API client (`kube/api.py`) and the pod-port transport
(`podhttp.py`) used of `http.client`, without its import of the `email` package (~10 ms CPU of
every command's start-up, measured with `python -X importtime` and `os.wait4`).

A request is a request line, headers and an optional body; an answer is a status line, headers
and a body delimited by Content-Length, by chunked coding, or by the end of the connection
(RFC 9112 section 6.3), read as Lib/http/client.py reads them (`HTTPResponse.begin`,
`_read_chunked`, `_check_close`), with its limits (65536-byte lines, 100 headers), its checks of
what is sent (no control characters in the target, header names and values as it allows
them) and its exception names and messages, so callers and their error wording do not change.
A connection's socket is a TCP one (`connect()`), or anything with `sendall()` and
`makefile('rb')` a subclass puts in `sock` (a port-forward channel, a TLS socket).
"""

from __future__ import annotations

import re
import socket
from typing import Any

_MAXLINE = 65536
_MAXHEADERS = 100
_METHODS_EXPECTING_BODY = frozenset({"PATCH", "POST", "PUT"})
# Lib/http/client.py: _contains_disallowed_url_pchar_re, _contains_disallowed_method_pchar_re,
# _is_legal_header_name, _is_illegal_header_value
_BAD_TARGET = re.compile("[\x00-\x20\x7f]")
_BAD_METHOD = re.compile("[\x00-\x1f]")
_HEADER_NAME = re.compile(rb"[^:\s][^:\r\n]*")
_BAD_HEADER_VALUE = re.compile(rb"\n(?![ \t])|\r(?![ \t\n])")


class HTTPException(Exception):
    pass


class InvalidURL(HTTPException):
    pass


class BadStatusLine(HTTPException):
    def __init__(self, line: str):
        super().__init__(line or repr(line))
        self.line = line


class RemoteDisconnected(ConnectionResetError, BadStatusLine):
    def __init__(self, *args: Any):
        BadStatusLine.__init__(self, "")
        ConnectionResetError.__init__(self, *args)


class LineTooLong(HTTPException):
    def __init__(self, what: str):
        super().__init__(f"got more than {_MAXLINE} bytes when reading {what}")


class IncompleteRead(HTTPException):
    def __init__(self, partial: bytes, expected: int | None = None):
        super().__init__(partial)
        self.partial, self.expected = partial, expected

    def __str__(self) -> str:
        more = f", {self.expected} more expected" if self.expected is not None else ""
        return f"IncompleteRead({len(self.partial)} bytes read{more})"


class UnknownProtocol(HTTPException):
    pass


class Connection:
    """One HTTP/1.1 connection: `request()` (or `putrequest`/`putheader`/`endheaders`), then
    `getresponse()`; the answer read whole before the next request. Not thread-safe."""

    default_port = 80

    def __init__(self, host: str, port: int | None = None, timeout: float | None = None):
        self.host, self.port, self.timeout = host, port or self.default_port, timeout
        self.sock: Any = None
        self._lines: list[str] = []
        self._method = "GET"

    def connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket after all
            pass

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def request(self, method: str, target: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> None:
        self.putrequest(method, target)
        if body is not None or method.upper() in _METHODS_EXPECTING_BODY:
            self.putheader("Content-Length", str(len(body or b"")))
        for name, value in (headers or {}).items():
            self.putheader(name, value)
        self.endheaders(body)

    def putrequest(self, method: str, target: str, skip_accept_encoding: bool = False) -> None:
        if _BAD_METHOD.search(method):
            raise ValueError(f"method can't contain control characters. {method!r}")
        if _BAD_TARGET.search(target):
            raise InvalidURL(f"URL can't contain control characters. {target!r} "
                             f"(found at least {_BAD_TARGET.search(target).group()!r})")
        self._method = method.upper()
        host = self.host if self.host.isascii() else self.host.encode("idna").decode("ascii")
        host = f"[{host}]" if ":" in host else host
        self._lines = [f"{method} {target or '/'} HTTP/1.1"]
        self.putheader("Host", host if self.port == self.default_port else f"{host}:{self.port}")
        if not skip_accept_encoding:
            self.putheader("Accept-Encoding", "identity")

    def putheader(self, name: str, value: Any) -> None:
        encoded = str(value).encode("latin-1")
        if not _HEADER_NAME.fullmatch(name.encode("ascii")):
            raise ValueError(f"Invalid header name {name.encode('ascii')!r}")
        if _BAD_HEADER_VALUE.search(encoded):
            raise ValueError(f"Invalid header value {encoded!r}")
        self._lines.append(f"{name}: {value}")

    def endheaders(self, body: bytes | None = None) -> None:
        if self.sock is None:
            self.connect()
        head = ("\r\n".join(self._lines) + "\r\n\r\n").encode("latin-1")
        self._lines = []
        self.sock.sendall(head + body if body and len(body) < 65536 else head)
        if body and len(body) >= 65536:
            self.sock.sendall(body)

    def getresponse(self) -> Response:
        response = Response(self.sock, self._method)
        try:
            response.begin()
        except BaseException:
            response.close()
            raise
        return response


class Response:
    """An answer: `status`, `reason`, `getheader()`, `will_close`; the body by `read()` (whole)
    or `read1(n)` (what has arrived, at most n bytes); b"" once it has all been read."""

    def __init__(self, sock: Any, method: str):
        self.fp: Any = sock.makefile("rb")
        self._method = method
        self.status = 0
        self.reason = ""
        self.version = 11
        self.headers: dict[str, str] = {}
        self.will_close = True
        self.chunked = False
        self.length: int | None = None
        # Bytes left of the current chunk; 0: its data read, not yet the CRLF after it; None:
        # no chunk yet
        self._chunk_left: int | None = None

    def begin(self) -> None:
        while True:
            version, status, reason = self._read_status()
            if status != 100:
                break
            self._read_headers()  # an interim 100 Continue: its headers, then the answer
        self.status, self.reason = status, reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise UnknownProtocol(version)
        self.headers = self._read_headers()
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.will_close = self._check_close()
        length = self.headers.get("content-length")
        if length is not None and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (204, 304) or 100 <= status < 200 or self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True

    def _read_status(self) -> tuple[str, int, str]:
        line = str(self.fp.readline(_MAXLINE + 1), "iso-8859-1")
        if len(line) > _MAXLINE:
            raise LineTooLong("status line")
        if not line:
            raise RemoteDisconnected("Remote end closed connection without response")
        try:
            version, status, reason = line.split(None, 2)
        except ValueError:
            try:
                version, status = line.split(None, 1)
                reason = ""
            except ValueError:
                version = ""
        if not version.startswith("HTTP/"):
            raise BadStatusLine(line)
        try:
            code = int(status)
        except ValueError:
            raise BadStatusLine(line) from None
        if not 100 <= code <= 999:
            raise BadStatusLine(line)
        return version, code, reason

    def _read_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        last = None
        for _ in range(_MAXHEADERS + 1):
            line = self.fp.readline(_MAXLINE + 1)
            if len(line) > _MAXLINE:
                raise LineTooLong("header line")
            if line in (b"\r\n", b"\n", b""):
                return headers
            text = str(line, "iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and last is not None:  # an obsolete folded line
                headers[last] += "\r\n" + text  # as email's parser keeps it
                continue
            name, _, value = text.partition(":")
            last = name.strip().lower()
            value = value.strip()
            headers[last] = f"{headers[last]}, {value}" if last in headers else value
        raise HTTPException(f"got more than {_MAXHEADERS} headers")

    def _check_close(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == 11:
            return "close" in connection
        return not ("keep-alive" in self.headers or "keep-alive" in connection
                    or "keep-alive" in self.headers.get("proxy-connection", "").lower())

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def close(self) -> None:
        fp, self.fp = self.fp, None
        if fp is not None:
            fp.close()

    def read(self) -> bytes:
        """The rest of the body."""
        if self.fp is None:
            return b""
        if self.chunked:
            parts = []
            try:
                if self._chunk_left:  # the rest of a chunk read1() began
                    parts.append(self._exactly(self._chunk_left))
                    self._chunk_left = 0
                while True:
                    size = self._next_chunk_size()
                    if size == 0:
                        self.close()
                        return b"".join(parts)
                    parts.append(self._exactly(size))
                    self._chunk_left = 0
            except IncompleteRead as e:  # what was read whole, as http.client says it
                raise IncompleteRead(b"".join(parts)) from e
        if self.length is None:
            data = self.fp.read()
            self.close()
            return data
        data = self.fp.read(self.length)
        if len(data) < self.length:
            self.close()
            raise IncompleteRead(data, self.length - len(data))
        self.length = 0
        self.close()
        return data

    def read1(self, n: int) -> bytes:
        """At most `n` bytes of the body, with at most one read from the socket."""
        if self.fp is None or n <= 0:
            return b""
        if self.chunked:
            return self._read1_chunked(n)
        if self.length is not None:
            n = min(n, self.length)
            if n == 0:
                self.close()
                return b""
        data = self.fp.read1(n)
        if self.length is not None:
            if not data:
                self.close()
                raise IncompleteRead(b"", self.length)
            self.length -= len(data)
        elif not data:
            self.close()
        return data

    def _read1_chunked(self, n: int) -> bytes:
        if not self._chunk_left:
            size = self._next_chunk_size()
            if size == 0:
                self.close()
                return b""
            self._chunk_left = size
        data = self.fp.read1(min(n, self._chunk_left))
        if not data:
            self.close()
            raise IncompleteRead(b"", self._chunk_left)
        self._chunk_left -= len(data)
        return data

    def _next_chunk_size(self) -> int:
        """The size of the next chunk (after the CRLF that ends the one before); at the last
        chunk (0) its trailers are read up to the blank line."""
        if self._chunk_left == 0:
            self.fp.read(2)  # the CRLF after a chunk's data (http.client does not check it)
        line = self.fp.readline(_MAXLINE + 1)
        if len(line) > _MAXLINE:
            raise LineTooLong("chunk size")
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            self.close()
            raise IncompleteRead(b"") from None
        if size == 0:
            while True:
                trailer = self.fp.readline(_MAXLINE + 1)
                if len(trailer) > _MAXLINE:
                    raise LineTooLong("trailer line")
                if trailer in (b"\r\n", b"\n", b""):
                    break
        return size

    def _exactly(self, size: int) -> bytes:
        data = self.fp.read(size)
        if len(data) < size:
            self.close()
            raise IncompleteRead(data, size - len(data))
        return data
