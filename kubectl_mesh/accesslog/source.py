"""Reading a proxy's log through the Kubernetes logs API, as a stream of lines.

`GET /api/v1/namespaces/NS/pods/NAME/log?container=istio-proxy&timestamps=true[&follow=true]
[&sinceSeconds=S][&tailLines=N]` – the same request `kubectl logs` makes (RBAC: `get pods/log`).

Each stream is the API client's (`KubeApi.stream`: its proxy policy, TLS, credentials and
renewal on a 401) on a connection of its own: a followed log holds it for as long as the
command runs. Lines are split on `\\n` only and never accumulate: memory per stream is one
chunk plus one partial line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

from kubectl_mesh.errors import MeshError
from kubectl_mesh.kube.api import pod_path
from kubectl_mesh.kube.pods import PROXY_CONTAINER

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


class PodLogStream:
    """One pod's proxy log as lines (bytes, newline stripped). `open()` raises MeshErrors;
    `close()` may be called from another thread to end a follow."""

    def __init__(self, api, namespace: str, pod: str, query: LogQuery):
        self.api = api  # kube.api.KubeApi
        self.namespace = namespace
        self.pod = pod
        self.query = query
        self._stream = None
        self._closed = False

    @property
    def ref(self) -> str:
        return f"{self.pod}.{self.namespace}"

    def open(self) -> "PodLogStream":
        # A follow may be quiet for hours: only the connect and the request are timed.
        try:
            stream = self.api.stream(
                pod_path(self.namespace, self.pod, "log"), self.query.params(),
                what=f"the {self.query.container} log of {self.ref}",
                read_timeout=None if self.query.follow else self.api.timeout)
        except MeshError as e:
            raise _log_error(e, self.ref, self.query.container) from e
        if self._closed:  # close() came while it opened
            stream.close()
        self._stream = stream
        return self

    def lines(self) -> Iterator[bytes]:
        """The log's lines as they arrive; ends when the server ends the stream (or close())."""
        if self._stream is None:
            self.open()
        return self._stream.lines(MAX_LINE_BYTES)

    def close(self) -> None:
        """End the stream; safe to call twice and from another thread."""
        self._closed = True
        if self._stream is not None:
            self._stream.close()

    def __enter__(self) -> "PodLogStream":
        return self.open() if self._stream is None else self

    def __exit__(self, *exc) -> None:
        self.close()


def _log_error(error: MeshError, ref: str, container: str) -> MeshError:
    """Name the pod and container in a logs-API error (the API's 400 says why: not running,
    no such container...)."""
    if error.message.startswith("cannot "):  # RBAC, or no connection: already says what
        return error
    error.message = f"cannot read the {container} log of {ref}: {error.message}"
    return error
