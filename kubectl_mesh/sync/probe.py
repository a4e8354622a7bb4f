"""Fetching for `--verify` and `--diff`: each proxy's Envoy admin (one port-forward per proxy,
bounded concurrency), and for a version lag, the owning istiod's syncz again (over that
istiod's one forward)."""

from __future__ import annotations

import time
from typing import IO, Mapping, Sequence

from kubectl_mesh.errors import NotFoundError, UnreachableError
from kubectl_mesh.sync.verify import (GONE, LISTENERS_MASK, STATS_FILTER, UNREACHABLE,
                                      WARNING_LEVEL, Finding, LAGGING, envoy_state,
                                      pod_control_plane, proxy_findings)
from kubectl_mesh.syncz import ProxySync

# config_dump ?mask= per section --diff compares (Envoy applies one mask to every section).
DIFF_MASKS = ("dynamic_active_clusters", "dynamic_listeners", "dynamic_route_configs")
RECHECK_DELAY = 0.3  # a push racing the checks settles within this on a healthy proxy


def verify_proxies(session, proxies: Sequence[ProxySync], pods: Mapping[str, object],
                   istiods: Mapping[str, object], *, concurrency: int,
                   stderr: IO[str] | None) -> list[Finding]:
    """Findings for every proxy in `proxies` (istiod's) and `pods` (the cluster's, by ref).

    A proxy in syncz without a pod is GONE; a pod no syncz lists is checked as UNKNOWN; a pod
    that disappears while we check it is GONE too, not an error.
    """
    from kubectl_mesh.session import for_each

    listed = {p.name: p for p in proxies}
    work = sorted(set(listed) | set(pods))
    findings: list[Finding] = []

    def check(proxy_id: str) -> list[Finding]:
        sync, pod = listed.get(proxy_id), pods.get(proxy_id)
        if pod is None:
            return [Finding(proxy_id, GONE, f"istiod {sync.istiod} lists it, but there is no "
                            "such Running pod (deleted, or the listing is stale)")]
        istiod = istiods.get(sync.istiod) if sync is not None and sync.istiod else None
        try:
            found = _check_once(session, proxy_id, pod, sync)
            if istiod is not None and any(f.check == LAGGING for f in found):
                # syncz was read before the Envoy: a push in between puts the Envoy ahead of
                # it. Read both again, the proxy's syncz entry first.
                time.sleep(RECHECK_DELAY)
                try:
                    sync = _fresh_sync(istiod, sync)
                except UnreachableError as e:
                    return found + [Finding(
                        proxy_id, UNREACHABLE, f"istiod {istiod.name} did not answer again "
                        f"({e.message}): the version lag was not re-checked",
                        severity=WARNING_LEVEL)]
                found = _check_once(session, proxy_id, pod, sync)
            return found
        except NotFoundError as e:
            return [Finding(proxy_id, GONE, f"the pod vanished while it was being verified "
                            f"({e.message})")]
        except UnreachableError as e:
            return [Finding(proxy_id, UNREACHABLE, f"{e}; a paused or overloaded Envoy cannot "
                            "answer its admin API")]

    results = for_each(work, check, concurrency=concurrency, stderr=stderr,
                       label="proxies verified", progress_after=0.5)
    for proxy_id, found, error in results:
        if error is not None:  # not a per-proxy condition (e.g. RBAC): the run fails
            raise error
        findings.extend(found)
    return findings


def _check_once(session, proxy_id, pod, sync) -> list[Finding]:
    from kubectl_mesh.admin import NotJsonError

    listeners, unprintable = None, ""
    with session.admin(pod) as admin:
        stats = admin.stats(filter=STATS_FILTER)
        # error_state only exists after an LDS rejection: skip the dump when none was counted
        if _lds_rejected(stats):
            try:
                listeners = admin.config_dump(mask=LISTENERS_MASK)
            except NotJsonError as e:
                # a rejected listener of a type this Envoy build does not know cannot be
                # written as JSON (Envoy says so in one line): the rejection is the finding
                unprintable = e.said or e.message
    injected_for = pod_control_plane(pod.labels, pod.annotations)
    return proxy_findings(proxy_id, sync, envoy_state(stats, listeners, unprintable),
                          injected_for)


def _fresh_sync(istiod, sync: ProxySync) -> ProxySync:
    """`sync` as the istiod that owns it (a `reach.Istiod`) lists it now (its namespace's
    syncz only); `sync` itself if it is no longer listed there (it reconnected: the first
    reading stands)."""
    namespace = sync.name.rpartition(".")[2]
    fresh = istiod.proxies(namespace)
    return next((p for p in fresh if p.name == sync.name), sync)


def _lds_rejected(stats: dict) -> bool:
    return any(s.get("name") == "listener_manager.lds.update_rejected" and s.get("value")
               for s in stats.get("stats") or [])


def envoy_dump(session, pod) -> dict:
    """The proxy's dynamic clusters, listeners and routes (three masked fetches)."""
    with session.admin(pod) as admin:
        configs = [c for mask in DIFF_MASKS for c in admin.config_dump(mask=mask).get("configs", [])]
    return {"configs": configs}
