"""What the user said about the cluster – kubeconfig, context, namespace, time limit, the
proxy's admin port, whom to impersonate – as a frozen value the core owns; `cli.common.cluster_options` makes one
from flags, and the core never sees the flags."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_PROXY_ADMIN_PORT = 15000
DEFAULT_CONCURRENCY = 10


@dataclass(frozen=True)
class ClusterOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT  # None = no timeout
    proxy_admin_port: int = DEFAULT_PROXY_ADMIN_PORT
    as_user: str | None = None  # --as: the user to impersonate
    as_groups: tuple[str, ...] = ()  # --as-group, repeatable
