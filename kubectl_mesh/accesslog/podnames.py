"""Upstream host IP → the pod behind it, so `--by upstream` names pods, not addresses.

One `list pods` with `fieldSelector=status.podIP=IP` per distinct IP, cached (an access log
names few distinct upstreams). Asked across all namespaces first; when RBAC forbids that,
in the namespace the upstream cluster's name points at (`outbound|80|v2|catalog.ns.svc...`)
or the target's. An IP no pod has (a VM, an external service) keeps its address.
"""

from __future__ import annotations

from typing import IO, Callable

from kubectl_mesh.errors import ForbiddenError, MeshError


def cluster_namespace(cluster: str | None) -> str | None:
    """`outbound|80|v2|catalog.istioinaction.svc.cluster.local` → `istioinaction`."""
    if not cluster or cluster.count("|") != 3:
        return None
    parts = cluster.split("|")[3].split(".")
    return parts[1] if len(parts) >= 3 and parts[2] == "svc" else None


class PodNames:
    """`lookup(ip)` → `name.namespace` of the pod with that `status.podIP`, or None."""

    def __init__(self, list_pods: Callable[..., list[dict]], default_namespace: str | None,
                 stderr: IO[str] | None = None):
        self._list_pods = list_pods  # KubeApi.list_pods(namespace, field_selector=...)
        self._default_namespace = default_namespace
        self._stderr = stderr
        self._cache: dict[str, str | None] = {}
        self._cluster_wide = True  # until RBAC says otherwise
        self._warned = False
        self.calls = 0  # API calls made (tests check the cache)

    def lookup(self, ip: str, namespace_hint: str | None = None) -> str | None:
        if ip in self._cache:
            return self._cache[ip]
        name = None
        try:
            name = self._find(ip, namespace_hint)
        except MeshError as e:
            self._warn(f"cannot map upstream IPs to pods: {e}")
        self._cache[ip] = name
        return name

    def _find(self, ip: str, namespace_hint: str | None) -> str | None:
        selector = f"status.podIP={ip}"
        if self._cluster_wide:
            try:
                self.calls += 1
                return _best(self._list_pods(None, field_selector=selector))
            except ForbiddenError:
                self._cluster_wide = False
        for ns in dict.fromkeys(n for n in (namespace_hint, self._default_namespace) if n):
            try:
                self.calls += 1
                found = _best(self._list_pods(ns, field_selector=selector))
            except ForbiddenError as e:
                self._warn(f"cannot map upstream IPs to pods: {e}")
                continue
            if found:
                return found
        return None

    def _warn(self, message: str) -> None:
        if self._stderr is not None and not self._warned:
            self._warned = True
            print(f"warning: {message}", file=self._stderr)


def _best(pods: list[dict]) -> str | None:
    """The Running pod among those with the IP (a finished pod may keep an old IP); host-
    network pods share the node's IP, so several names are marked as such."""
    def rank(p: dict) -> tuple:
        status = p.get("status") or {}
        meta = p.get("metadata") or {}
        return (status.get("phase") != "Running", bool(meta.get("deletionTimestamp")),
                meta.get("name", ""))

    pods = sorted(pods, key=rank)
    if not pods:
        return None
    meta = pods[0].get("metadata") or {}
    name = f"{meta.get('name')}.{meta.get('namespace')}"
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    return f"{name} (+{len(running) - 1} more)" if len(running) > 1 else name
