"""A port-forward WebSocket used directly as the client's socket: no local listener, no relay
thread, no socketpair copies (the performance notes measure the relay at 2-5x the cost).

`ChannelSocket` reads the `v4.channel.k8s.io` channels (`kube.wsframes`) of one connection to
the API server (`kube.wsdial`) and offers what an HTTP/1.1 connection (`http1`) needs of a
socket: `sendall()`, `makefile("rb")`, `settimeout()`, `close()`. Data-channel payloads are
read straight from the connection into the caller's buffer; a message on the error channel
(e.g. nothing listens on the pod's port) is recorded and ends the stream.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable

from kubectl_mesh.kube.api import pod_path
from kubectl_mesh.kube.wsdial import TlsReuse, UpgradeRefused, open_websocket, port_forward_refusal
from kubectl_mesh.kube.wsframes import V4_CHANNEL, ChannelReader, WebSocket

DATA, ERROR = 0, 1  # the channels of the first (only) port
_READ_BUFFER = 256 * 1024


class ChannelSocket:
    """One port-forward WebSocket to one pod port, as a byte-stream socket."""

    def __init__(self, ws: WebSocket, on_error: Callable[[str], None]):
        self._ws = ws
        self._channels = ChannelReader(ws, port_prefix=True, buffer_size=64 * 1024)
        self._on_error = on_error
        self._eof = False

    # -- what http1 uses -------------------------------------------------------------------

    def sendall(self, data) -> None:
        """Send `data` as one masked binary message on the data channel."""
        self._ws.send_channel(DATA, data)

    def makefile(self, mode: str = "rb", buffering: int | None = None) -> io.BufferedReader:
        if "w" in mode:
            raise ValueError("a ChannelSocket is read through makefile('rb') only")
        return io.BufferedReader(_Reader(self), _READ_BUFFER)

    def settimeout(self, timeout: float | None) -> None:
        self._ws.settimeout(timeout)

    def close(self) -> None:
        self._ws.close()

    def shutdown(self, how: int | None = None) -> None:
        """`SHUT_WR`: a close frame, the WebSocket's "no more from me". Otherwise wake a read
        blocked in another thread (close() would not): both directions end, as a local port
        piped to the channel needs when either side goes."""
        if how == socket.SHUT_WR:
            self._ws.send_close()
        else:
            self._ws.abort()

    def readinto(self, view: memoryview) -> int:
        """Data-channel bytes into `view`; 0 at the end of the stream."""
        while not self._eof:
            channel = self._channels.next_channel()
            if channel < 0:
                self._eof = True
            elif channel != DATA:
                self._eof = read_port_forward_error(self._channels, self._on_error)
            else:
                n = self._channels.readinto(view)
                if n:
                    return n
        return 0


def read_port_forward_error(channels: ChannelReader, on_error: Callable[[str], None]) -> bool:
    """The rest of a message that is not data: on the error channel its text goes to
    `on_error` and ends the stream (True); anything else is dropped."""
    text = channels.rest_of_message().decode(errors="replace").strip()
    if channels.channel == ERROR and text:
        on_error(text)
        return True
    return False


class ForwardErrors:
    """What the error channels of a port-forward's connections said (e.g. nothing listens on
    the pod's port), for its `errors()`; shared by threads."""

    def __init__(self, pod_ref: str):
        self.pod_ref = pod_ref
        self._lock = threading.Lock()
        self._messages: list[str] = []

    def record(self, message: str) -> None:
        import logging
        logging.getLogger(__name__).debug("port-forward to %s: %s", self.pod_ref, message)
        with self._lock:
            self._messages.append(message)

    def messages(self) -> list[str]:
        with self._lock:
            return list(self._messages)


class _Reader(io.RawIOBase):
    """The raw stream under `makefile()`; closing it leaves the connection open (keep-alive)."""

    def __init__(self, channel: ChannelSocket):
        self._channel = channel

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        with memoryview(b) as view:
            return self._channel.readinto(view.cast("B"))


def open_port_forward(config, namespace: str, name: str, port: int, timeout: float | None,
                      tls: TlsReuse | None) -> WebSocket:
    """An open `v4.channel.k8s.io` port-forward WebSocket to `name`.`namespace`:`port`, or
    ForbiddenError (401) / NotFoundError / UnreachableError / WebSocketRefused or
    WebSocketForbidden (the caller may fall back to kubectl then)."""
    path = pod_path(namespace, name, "portforward")
    try:
        return open_websocket(config, path, f"ports={port}", [V4_CHANNEL], timeout=timeout,
                              tls=tls, doing=f" for a port-forward to pod {name}.{namespace}")
    except UpgradeRefused as refused:
        raise port_forward_refusal(refused, path, config) from refused


def dial(config, namespace: str, name: str, port: int, timeout: float | None,
         tls: TlsReuse | None, on_error: Callable[[str], None]) -> ChannelSocket:
    """A port-forward to `name`.`namespace`:`port` as a socket (see `open_port_forward`)."""
    return ChannelSocket(open_port_forward(config, namespace, name, port, timeout, tls),
                         on_error)
