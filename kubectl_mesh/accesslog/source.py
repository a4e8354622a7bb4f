"""Reading a proxy's log through the Kubernetes logs API, as a stream of lines.

`GET /api/v1/namespaces/NS/pods/NAME/log?container=istio-proxy&timestamps=true[&follow=true]
[&sinceSeconds=S][&tailLines=N]` – the same request `kubectl logs` makes (RBAC: `get pods/log`).

Each stream has its own `requests.Session` with the kubeconfig's credentials (the same
TLS/proxy/auth set-up as `KubeApi`): a followed log holds its connection for as long as the
command runs, so N pods need N connections, more than one shared pool is sized for. Lines are
split here (not with `iter_lines`, which also splits on a bare `\\r`) and never accumulate:
memory per stream is one chunk plus one partial line.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass
from typing import Iterator

from kubectl_mesh.errors import MeshError, UnreachableError
from kubectl_mesh.kube.pods import PROXY_CONTAINER

CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024  # a longer "line" is cut: the parser counts it as malformed


@dataclass(frozen=True)
class LogQuery:
    """What part of the log to read; the server applies `since`/`tail` before streaming."""

    since_seconds: float | None = None
    tail_lines: int | None = None
    follow: bool = False
    container: str = PROXY_CONTAINER

    def params(self) -> dict[str, str]:
        """The logs API query. `sinceSeconds` must be a whole number ≥ 1: round up."""
        params = {"container": self.container, "timestamps": "true"}
        if self.follow:
            params["follow"] = "true"
        if self.since_seconds is not None:
            params["sinceSeconds"] = str(max(1, math.ceil(self.since_seconds)))
        if self.tail_lines is not None:
            params["tailLines"] = str(self.tail_lines)
        return params


def log_path(namespace: str, pod: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{pod}/log"


class PodLogStream:
    """One pod's proxy log as lines (bytes, newline stripped). `open()` raises MeshErrors;
    `close()` may be called from another thread to end a follow."""

    def __init__(self, config, namespace: str, pod: str, query: LogQuery,
                 timeout: float | None = 10.0):
        self.config = config  # kube.kubeconfig.ApiConfig
        self.namespace = namespace
        self.pod = pod
        self.query = query
        self.timeout = timeout
        self._session = None
        self._response = None
        self._closed = False

    @property
    def ref(self) -> str:
        return f"{self.pod}.{self.namespace}"

    def open(self) -> "PodLogStream":
        import requests

        from kubectl_mesh.kube.api import status_error
        path = log_path(self.namespace, self.pod)
        # A follow may be quiet for hours: only the connect is timed, never the reads.
        timeout = (self.timeout, None if self.query.follow else self.timeout)
        from kubectl_mesh.kube.watch import stream_session
        self._session = stream_session(self.config)
        try:
            resp = self._session.get(self.config.server + path, params=self.query.params(),
                                     stream=True, timeout=timeout)
        except requests.exceptions.RequestException as e:
            self.close()
            raise UnreachableError(f"cannot read the {self.query.container} log of {self.ref} "
                                   f"from {self.config.where}: {_reason(e)}",
                                   hint="is the cluster running? retry, or raise "
                                        "--request-timeout") from e
        if resp.status_code != 200:
            body = resp.content
            self.close()
            raise _log_error(status_error(resp.status_code, body, "GET", path, self.config),
                             self.ref, self.query.container)
        self._response = resp
        return self

    def lines(self) -> Iterator[bytes]:
        """The log's lines as they arrive; ends when the server ends the stream (or close())."""
        import requests

        if self._response is None:
            self.open()
        pending = b""
        try:
            for chunk in self._response.iter_content(chunk_size=CHUNK_BYTES):
                if not chunk:
                    continue
                pending += chunk
                if b"\n" not in chunk:
                    if len(pending) > MAX_LINE_BYTES:
                        yield pending
                        pending = b""
                    continue
                *complete, pending = pending.split(b"\n")
                yield from complete
        except (requests.exceptions.RequestException, OSError, ValueError, AttributeError) as e:
            if self._closed:
                return  # close() from another thread ends the read this way
            raise UnreachableError(f"the log stream of {self.ref} broke: {_reason(e)}") from e
        if pending and not self._closed:
            yield pending

    def close(self) -> None:
        """End the stream; safe to call twice and from another thread."""
        self._closed = True
        resp, self._response = self._response, None
        if resp is not None:
            sock = _socket_of(resp)
            if sock is not None:  # wakes a reader blocked in recv(); close() alone may not
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            try:
                resp.close()
            except Exception:  # noqa: BLE001 - closing a broken stream is best effort
                pass
        if self._session is not None:
            self._session.close()

    def __enter__(self) -> "PodLogStream":
        return self.open() if self._response is None else self

    def __exit__(self, *exc) -> None:
        self.close()


def _socket_of(resp) -> socket.socket | None:
    conn = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _log_error(error: MeshError, ref: str, container: str) -> MeshError:
    """Name the pod and container in a logs-API error (the API's 400 says why: not running,
    no such container...)."""
    if error.message.startswith("cannot "):  # RBAC: already says verb and resource
        return error
    error.message = f"cannot read the {container} log of {ref}: {error.message}"
    return error


def _reason(exc: Exception) -> str:
    from kubectl_mesh.kube.api import _reason as api_reason
    return api_reason(exc)
