"""Port-forward to a pod port, the one way the product reaches one.

`open_channel()` hands out channels: `connect()` gives a connected socket to the pod port.
Directly, each connection is a port-forward WebSocket used as the socket (`kube.wschannel`):
no listener, no relay threads, no copies through a socketpair. Behind an HTTP proxy the
WebSocket relay on a local port (`kube.wsrelay`) carries it; where the API server refuses the
WebSocket (any non-101 answer but 401/404, a 403 included, as kubectl does), a
`kubectl port-forward` subprocess. `port_forward()` gives a local port instead, for tools
that want one. Every exit path closes the listener, the relays and their threads, or ends
kubectl. The clients of pod ports (Envoy admin, istiod) take a channel; kube/ knows none of
them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Iterator, Protocol

from kubectl_mesh.errors import ForbiddenError, UnreachableError
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.wschannel import ForwardErrors
from kubectl_mesh.kube.wsdial import WebSocketForbidden, WebSocketRefused


class PodRef(Protocol):
    name: str
    namespace: str


class Forward(Protocol):
    """What an open port-forward offers, whichever way it is carried."""

    local_port: int
    via: str  # "websocket" or "kubectl"

    def errors(self) -> list[str]: ...

    def close(self) -> None: ...


class Notices(Protocol):
    def once(self, key: str, message: str) -> None: ...


def open_forward(config: ApiConfig, pod: PodRef, port: int, *, timeout: float | None = 10.0,
                 kubectl: str | None = None, notices: Notices | None = None) -> Forward:
    """Start forwarding 127.0.0.1:<free port> to `pod`:`port`; the caller must close() it."""
    from kubectl_mesh.kube.wsrelay import WebSocketForward

    if not 0 < int(port) < 65536:
        raise ValueError(f"invalid port {port}")
    forward = WebSocketForward(config, pod.namespace, pod.name, int(port), timeout)
    try:
        forward.start()
        return forward
    except WebSocketRefused as refused:
        forward.close()
        return _kubectl_forward(config, pod, port, timeout, kubectl, refused, notices)
    except BaseException:
        forward.close()
        raise


def _kubectl_forward(config: ApiConfig, pod: PodRef, port: int, timeout: float | None,
                     kubectl: str | None, refused: WebSocketRefused,
                     notices: Notices | None) -> Forward:
    """The fallback when the API server refuses the WebSocket upgrade: `kubectl port-forward`,
    which falls back to SPDY itself (a POST, authorized as `create`)."""
    import logging

    from kubectl_mesh.kube.kubectlforward import KubectlForward

    logging.getLogger(__name__).debug("WebSocket port-forward refused (%s); falling back to "
                                      "kubectl", refused)
    forbidden = isinstance(refused, WebSocketForbidden)
    fallback = KubectlForward(config, pod.namespace, pod.name, int(port), timeout,
                              kubectl=kubectl, why=str(refused))
    try:
        fallback.start()
    except ForbiddenError as e:
        fallback.close()
        if forbidden:  # kubectl's SPDY path was refused `create`; say what WebSocket lacked
            also = ("the WebSocket path was refused too: ask for get and create on "
                    f"pods/portforward in namespace {pod.namespace}")
            user = e.hint or refused.error.hint  # `as user "..."`, where the server said it
            raise ForbiddenError(e.message, hint=f"{user}; {also}" if user else also) from e
        raise
    except BaseException:
        fallback.close()
        raise
    if forbidden and notices is not None:
        notices.once("websocket-forbidden",
                     f"note: RBAC refused the WebSocket port-forward ({refused.error.message}); "
                     "using kubectl port-forward (SPDY), which needs only create")
    return fallback


@contextlib.contextmanager
def port_forward(config: ApiConfig, pod: PodRef, port: int, *, timeout: float | None = 10.0,
                 kubectl: str | None = None, notices: Notices | None = None) -> Iterator[int]:
    """`with port_forward(cfg, pod, 15000) as local_port:` - 127.0.0.1 only, closed on exit."""
    forward = open_forward(config, pod, port, timeout=timeout, kubectl=kubectl, notices=notices)
    try:
        yield forward.local_port
    finally:
        forward.close()


class ChannelDialer:
    """Port-forward connections to one pod port, dialled on demand; each is a WebSocket used
    directly as a socket (`wschannel.ChannelSocket`). `start()` dials the first one, so RBAC
    denials, refusals and an unreachable API server surface there."""

    via = "websocket"

    def __init__(self, config: ApiConfig, pod: PodRef, port: int, timeout: float | None,
                 tls=None):
        from kubectl_mesh.kube.wsdial import TlsReuse

        if not 0 < int(port) < 65536:
            raise ValueError(f"invalid port {port}")
        self.config, self.pod, self.port, self.timeout = config, pod, int(port), timeout
        if tls is None and config.server.startswith("https"):
            tls = TlsReuse(config)
        self._tls = tls
        self._lock = threading.Lock()
        self._errors = ForwardErrors(f"{pod.name}.{pod.namespace}")
        self.record_error = self._errors.record
        self._spare = None
        self.describe = f"port-forward {pod.name}.{pod.namespace}:{port}"

    def start(self) -> None:
        self._spare = self._dial()

    def connect(self):
        """A connected ChannelSocket (the one `start()` opened first)."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            return spare
        try:
            return self._dial()
        except WebSocketRefused as e:  # it worked a moment ago: the server is in trouble
            raise UnreachableError(f"port-forward to pod {self.pod.name}.{self.pod.namespace}"
                                   f" refused: {e}", hint="retry in a moment") from e

    def _dial(self):
        from kubectl_mesh.kube.api import with_renewal
        from kubectl_mesh.kube.wschannel import dial

        return with_renewal(self.config, lambda: dial(
            self.config, self.pod.namespace, self.pod.name, self.port, self.timeout, self._tls,
            self.record_error))

    def errors(self) -> list[str]:
        return self._errors.messages()

    def close(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.close()


def _proxied(config: ApiConfig) -> bool:
    """Whether the API server is reached through a proxy (the relay carries those)."""
    from kubectl_mesh.kube.api import proxies_for

    return bool(proxies_for(config).get("https"))


class LocalPort:
    """A forward listening on 127.0.0.1 (`kubectl port-forward`, or the WebSocket relay used
    behind an HTTP proxy) as a channel: each `connect()` is a TCP connection to it."""

    def __init__(self, forward: Forward, timeout: float | None):
        self.forward, self.timeout = forward, timeout
        self.via = forward.via
        self.local_port = forward.local_port
        self.describe = f"http://127.0.0.1:{forward.local_port}"

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.local_port), timeout=self.timeout)

    def errors(self) -> list[str]:
        return self.forward.errors()

    def close(self) -> None:
        self.forward.close()


def open_channel(config: ApiConfig, pod: PodRef, port: int, *, timeout: float | None = 10.0,
                 tls=None, kubectl: str | None = None, notices: Notices | None = None):
    """The one way from the product to a pod port: a channel whose `connect()` gives a
    connected socket-like object to `pod`:`port`, with `errors()` (what the forward reported)
    and `close()`. Directly over port-forward WebSockets (no listener, no relay thread); behind
    an HTTP proxy through the WebSocket relay on a local port; where the API server refuses
    the WebSocket (403 included), through `kubectl port-forward`. The first connection is
    opened here, so RBAC denials and an unreachable API server surface at once."""
    if _proxied(config):
        return LocalPort(open_forward(config, pod, port, timeout=timeout, kubectl=kubectl,
                                      notices=notices), timeout)
    dialer = ChannelDialer(config, pod, port, timeout, tls)
    try:
        dialer.start()
    except WebSocketRefused as refused:
        return LocalPort(_kubectl_forward(config, pod, port, timeout, kubectl, refused, notices),
                         timeout)
    return dialer
