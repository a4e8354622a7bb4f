"""Which proxies a `kubectl mesh sync` run is about.

Like `istioctl proxy-status`: no TARGET and no `-n` means every proxy istiod knows, in all
namespaces; `-n NS` narrows to one namespace, `-A` says all explicitly; a TARGET (pod,
`deploy/x`, `NAME.NS`, `-l`) means that workload's proxies, resolved in `-n` or the
context's namespace as every other command does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from kubectl_mesh.syncz import ProxySync


def proxy_namespace(proxy_id: str) -> str:
    """`catalog-5c99.istioinaction` → `istioinaction` (istiod's ids are `pod.namespace`)."""
    return proxy_id.rpartition(".")[2]


@dataclass(frozen=True)
class Scope:
    """A predicate over proxy ids: a namespace (None = all) and/or an explicit set of ids."""

    namespace: str | None = None
    proxy_ids: frozenset[str] | None = None  # a target's pods; None = no target

    def matches(self, proxy_id: str) -> bool:
        if self.proxy_ids is not None:
            return proxy_id in self.proxy_ids
        return self.namespace is None or proxy_namespace(proxy_id) == self.namespace

    def select(self, proxies: Iterable[ProxySync]) -> list[ProxySync]:
        return [p for p in proxies if self.matches(p.name)]

    def describe(self) -> str:
        """For messages: `in namespace app`, `in all namespaces`, `for deploy/x`."""
        if self.proxy_ids is not None:
            return f"for {', '.join(sorted(self.proxy_ids))}"
        return f"in namespace {self.namespace}" if self.namespace else "in any namespace"


def scope_for(namespace_flag: str | None, all_namespaces: bool,
              target_ids: Iterable[str] | None = None) -> Scope:
    """The Scope of the flags: TARGET ids win; then `-A`; then `-n`; else every namespace."""
    if target_ids is not None:
        return Scope(proxy_ids=frozenset(target_ids))
    if all_namespaces:
        return Scope()
    return Scope(namespace=namespace_flag or None)
