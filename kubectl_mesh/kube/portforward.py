"""Port-forward to a pod: a local port on 127.0.0.1, relayed through the API server.

`port_forward()` speaks the API server's WebSocket port-forward (`v4.channel.k8s.io`) with
`websocket-client` directly - the `kubernetes` client's objects cost ~0.6 s of start-up. One
WebSocket per accepted local connection. When the API server refuses WebSocket (a non-101
answer that is not 401/403/404), it falls back to a `kubectl port-forward` subprocess. Every
exit path closes the listener, the relays and their threads, or terminates kubectl.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator, Protocol

from kubectl_mesh.errors import UnreachableError
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.wsrelay import WebSocketForward, WebSocketRefused

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


def open_forward(config: ApiConfig, pod: PodRef, port: int, *, timeout: float | None = 10.0,
                 kubectl: str | None = None) -> Forward:
    """Start forwarding 127.0.0.1:<free port> to `pod`:`port`; the caller must close() it."""
    if not 0 < int(port) < 65536:
        raise ValueError(f"invalid port {port}")
    forward = WebSocketForward(config, pod.namespace, pod.name, int(port), timeout)
    try:
        forward.start()
        return forward
    except WebSocketRefused as refused:
        forward.close()
        log.debug("WebSocket port-forward refused (%s); falling back to kubectl", refused)
        from kubectl_mesh.kube.kubectlforward import KubectlForward

        fallback = KubectlForward(config, pod.namespace, pod.name, int(port), timeout,
                                  kubectl=kubectl, why=str(refused))
        try:
            fallback.start()
        except BaseException:
            fallback.close()
            raise
        return fallback
    except BaseException:
        forward.close()
        raise


@contextlib.contextmanager
def port_forward(config: ApiConfig, pod: PodRef, port: int, *, timeout: float | None = 10.0,
                 kubectl: str | None = None) -> Iterator[int]:
    """`with port_forward(cfg, pod, 15000) as local_port:` - 127.0.0.1 only, closed on exit."""
    forward = open_forward(config, pod, port, timeout=timeout, kubectl=kubectl)
    try:
        yield forward.local_port
    finally:
        forward.close()


@contextlib.contextmanager
def open_admin(config: ApiConfig, pod: PodRef, admin_port: int = 15000,
               timeout: float | None = 10.0, *, kubectl: str | None = None):
    """`with open_admin(cfg, pod) as admin:` an `EnvoyAdmin` over a port-forward to the pod.

    When the admin client cannot reach Envoy and the port-forward saw an error (e.g. nothing
    listens on the port), the error says so.
    """
    from kubectl_mesh.admin import EnvoyAdmin  # lazily: written and owned elsewhere

    forward = open_forward(config, pod, admin_port, timeout=timeout, kubectl=kubectl)
    try:
        admin = EnvoyAdmin(f"http://127.0.0.1:{forward.local_port}",
                           pod_ref=f"{pod.name}.{pod.namespace}", timeout=timeout)
        try:
            yield admin
        finally:
            admin.close()
    except UnreachableError as e:
        seen = forward.errors()
        if seen and type(e) is UnreachableError:  # not AdminError: Envoy did answer then
            raise UnreachableError(e.message, hint=f"port-forward: {seen[-1]}") from e
        raise
    finally:
        forward.close()

