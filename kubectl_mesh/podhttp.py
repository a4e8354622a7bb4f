"""HTTP/1.1 to a pod port over whatever carries it (`kube.portforward.open_channel`): the one
transport of the Envoy admin client and the istiod client. `http1` (requests costs ~70 ms
of start-up and a copy of every body), kept-alive connections pooled for concurrent callers,
one retry of a kept-alive connection the other end closed meanwhile (what urllib3 does).

Transport failures are raised as `Timeout` / `Unreachable`; each client turns them into its own
one-line message (it knows what it talked to), once, at its boundary.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import urlencode, urlsplit

from kubectl_mesh import http1

_HEADERS = {"Accept": "*/*", "User-Agent": "kubectl-mesh"}
_STALE = (http1.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
          http1.BadStatusLine)


class TransportError(Exception):
    """The request did not get an answer; `path` is what was asked."""

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path


class Timeout(TransportError):
    pass


class Unreachable(TransportError):
    pass


@dataclass(frozen=True)
class Response:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class StreamedResponse:
    """An answer read as it arrives (`chunks()`), never whole in memory; transport failures
    while reading are raised as `Timeout` / `Unreachable` like the request's own."""

    def __init__(self, answer: http1.Response, path: str):
        self._answer = answer
        self.path = path
        self.status_code = answer.status
        self.content_type = answer.getheader("Content-Type", "") or ""

    def chunks(self, size: int = 64 * 1024) -> Iterator[bytes]:
        """The body in pieces of at most `size` bytes, as they arrive."""
        while True:
            try:
                chunk = self._answer.read1(size)
            except TimeoutError as e:
                raise Timeout(self.path) from e
            except (OSError, http1.HTTPException) as e:
                raise Unreachable(self.path) from e
            if not chunk:
                return
            yield chunk

    def head(self, limit: int) -> bytes:
        """Up to `limit` bytes of the body (for an error's message)."""
        out = bytearray()
        for chunk in self.chunks(min(limit, 64 * 1024)):
            out += chunk
            if len(out) >= limit:
                break
        return bytes(out[:limit])


class _CarriedConnection(http1.Connection):
    """An HTTPConnection whose socket comes from a factory instead of a TCP connect."""

    def __init__(self, factory: Callable[[], Any], timeout: float | None):
        super().__init__("localhost", timeout=timeout)
        self._factory = factory

    def connect(self) -> None:
        self.sock = self._factory()


class PodHttp:
    """Requests to one pod port. `connect()` returns a connected socket-like object
    (`sendall`, `makefile`, `close`); without it, `base_url` is dialled over TCP."""

    def __init__(self, base_url: str, timeout: float | None, *,
                 connect: Callable[[], Any] | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.bytes_fetched = 0
        self._connect = connect
        self._idle: list[http1.Connection] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def request(self, method: str, path: str, params: dict | None = None, *,
                while_waiting: Callable[[], object] | None = None) -> Response:
        """One request; `while_waiting()` runs (once) between sending it and reading the
        answer, in this thread: work that overlaps the server's, without a thread fighting
        the sender for the GIL."""
        target = path + ("?" + urlencode(params) if params else "")
        for attempt in (1, 2):
            conn, reused = self._take()
            try:
                conn.request(method, target, headers=_HEADERS)
                if while_waiting is not None:
                    waiting, while_waiting = while_waiting, None
                    waiting()
                answer = conn.getresponse()
                resp = Response(answer.status, answer.read())
            except TimeoutError as e:
                conn.close()
                raise Timeout(path) from e
            except (OSError, http1.HTTPException) as e:
                conn.close()
                if reused and attempt == 1 and isinstance(e, _STALE):
                    continue
                raise Unreachable(path) from e
            if answer.will_close:
                conn.close()
            else:
                self._give_back(conn)
            self.bytes_fetched += len(resp.content)
            return resp
        raise AssertionError("unreachable")  # the loop returns or raises

    @contextlib.contextmanager
    def stream(self, method: str, target: str) -> Iterator[StreamedResponse]:
        """One request (`target` = path and query, already encoded) whose answer the caller
        reads as it arrives; on its own connection, closed on exit (a half-read body cannot
        go back to the pool)."""
        path = target.split("?", 1)[0]
        conn, _ = self._take_new()
        try:
            try:
                conn.request(method, target, headers=_HEADERS)
                answer = conn.getresponse()
            except TimeoutError as e:
                raise Timeout(path) from e
            except (OSError, http1.HTTPException) as e:
                raise Unreachable(path) from e
            yield StreamedResponse(answer, path)
        finally:
            conn.close()

    def _take_new(self) -> tuple[http1.Connection, bool]:
        if self._connect is not None:
            return _CarriedConnection(self._connect, self.timeout), False
        parts = urlsplit(self.base_url)
        return http1.Connection(parts.hostname or "127.0.0.1", parts.port or 80,
                                timeout=self.timeout), False

    def _take(self) -> tuple[http1.Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._take_new()

    def _give_back(self, conn: http1.Connection) -> None:
        with self._lock:
            self._idle.append(conn)
