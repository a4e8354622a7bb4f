"""Port-forward to a pod: a local port on 127.0.0.1, relayed through the API server; and the
Envoy admin client over a port-forward.

`open_admin()` uses each port-forward WebSocket directly as the admin client's socket
(`kube.wschannel`): no listener, no relay threads, no copies through a socketpair. It uses
the local-port relay below only where that cannot work (an HTTP proxy to the API server).

`port_forward()` speaks the API server's WebSocket port-forward (`v4.channel.k8s.io`) with
`websocket-client` directly - the `kubernetes` client's objects cost ~0.6 s of start-up. One
WebSocket per accepted local connection. When the API server refuses WebSocket (a non-101
answer that is not 401/403/404), it falls back to a `kubectl port-forward` subprocess. Every
exit path closes the listener, the relays and their threads, or terminates kubectl.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Iterator, Protocol

from kubectl_mesh.errors import ForbiddenError, UnreachableError
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.wschannel import WebSocketForbidden, WebSocketRefused

log = logging.getLogger(__name__)


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
    from kubectl_mesh.kube.wsrelay import (
        WebSocketForward,  # websocket-client: imported on use
    )

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
    from kubectl_mesh.kube.kubectlforward import KubectlForward

    log.debug("WebSocket port-forward refused (%s); falling back to kubectl", refused)
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
        from kubectl_mesh.kube.wschannel import TlsReuse

        if not 0 < int(port) < 65536:
            raise ValueError(f"invalid port {port}")
        self.config, self.pod, self.port, self.timeout = config, pod, int(port), timeout
        if tls is None and config.server.startswith("https"):
            tls = TlsReuse(config)
        self._tls = tls
        self._lock = threading.Lock()
        self._errors: list[str] = []
        self._spare = None

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
        from kubectl_mesh.kube.wschannel import dial

        return dial(self.config, self.pod.namespace, self.pod.name, self.port, self.timeout,
                    self._tls, self.record_error)

    def record_error(self, message: str) -> None:
        log.debug("port-forward to %s.%s: %s", self.pod.name, self.pod.namespace, message)
        with self._lock:
            self._errors.append(message)

    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def close(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.close()


def _proxied(config: ApiConfig) -> bool:
    """Whether the API server is reached through a proxy (websocket-client handles those)."""
    from kubectl_mesh.kube.api import proxies_for

    return bool(proxies_for(config).get("https"))


@contextlib.contextmanager
def open_admin(config: ApiConfig, pod: PodRef, admin_port: int = 15000,
               timeout: float | None = 10.0, *, kubectl: str | None = None, tls=None,
               notices: Notices | None = None):
    """`with open_admin(cfg, pod) as admin:` an `EnvoyAdmin` over a port-forward to the pod.

    When the admin client cannot reach Envoy and the port-forward saw an error (e.g. nothing
    listens on the port), the error says so. `tls` (a `wschannel.TlsReuse`) lets many
    port-forwards share one TLS context and resume one TLS session.
    """
    from kubectl_mesh.admin import EnvoyAdmin  # imported on use, like every client here

    ref = f"{pod.name}.{pod.namespace}"
    carrier, direct = None, False
    if not _proxied(config):
        dialer = ChannelDialer(config, pod, admin_port, timeout, tls)
        try:
            dialer.start()
            carrier, direct = dialer, True
        except WebSocketRefused as refused:
            carrier = _kubectl_forward(config, pod, admin_port, timeout, kubectl, refused,
                                       notices)
    else:
        carrier = open_forward(config, pod, admin_port, timeout=timeout, kubectl=kubectl,
                               notices=notices)
    if direct:
        admin = EnvoyAdmin(f"port-forward {ref}:{admin_port}", pod_ref=ref, timeout=timeout,
                           connect=carrier.connect)
    else:
        admin = EnvoyAdmin(f"http://127.0.0.1:{carrier.local_port}", pod_ref=ref,
                           timeout=timeout)
    try:
        try:
            yield admin
        finally:
            admin.close()
    except UnreachableError as e:
        seen = carrier.errors()
        if seen and type(e) is UnreachableError:  # not AdminError: Envoy did answer then
            raise UnreachableError(e.message, hint=f"port-forward: {seen[-1]}") from e
        raise
    finally:
        carrier.close()
