"""Fetching for `--verify` and `--diff`: each proxy's Envoy admin (one port-forward per proxy,
bounded concurrency) and the owning istiod's view of it (over that istiod's one forward)."""

from __future__ import annotations

import time
from typing import IO, Mapping, Sequence

from kubectl_mesh.errors import NotFoundError, UnreachableError
from kubectl_mesh.sync.istiod import IstiodDebug
from kubectl_mesh.sync.verify import (GONE, LISTENERS_MASK, STATS_FILTER, UNREACHABLE,
                                      WARNING_LEVEL, Finding, LAGGING, envoy_state,
                                      proxy_findings)
from kubectl_mesh.syncstatus import ProxySync

# config_dump ?mask= per section --diff compares (Envoy applies one mask to every section).
DIFF_MASKS = ("dynamic_active_clusters", "dynamic_listeners", "dynamic_route_configs")
RECHECK_DELAY = 0.3  # a push racing the checks settles within this on a healthy proxy


def verify_proxies(session, proxies: Sequence[ProxySync], pods: Mapping[str, object],
                   istiods: Mapping[str, IstiodDebug], *, concurrency: int,
                   stderr: IO[str] | None) -> list[Finding]:
    """Findings for every proxy in `proxies` (istiod's) and `pods` (the cluster's, by ref).

    A proxy in syncz without a pod is GONE; a pod no syncz lists is checked as UNKNOWN; a pod
    that disappears while we check it is GONE too, not an error.
    """
    import concurrent.futures

    from kubectl_mesh.session import for_each

    listed = {p.name: p for p in proxies}
    work = sorted(set(listed) | set(pods))
    findings: list[Finding] = []
    # istiod's view of a proxy is fetched while its Envoy is asked, not after: one round
    # trip less per proxy on a real cluster.
    views = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency),
                                                  thread_name_prefix="istiod-view")

    def check(proxy_id: str) -> list[Finding]:
        sync, pod = listed.get(proxy_id), pods.get(proxy_id)
        if pod is None:
            return [Finding(proxy_id, GONE, f"istiod {sync.istiod} lists it, but there is no "
                            "such Running pod (deleted, or the listing is stale)")]
        istiod = istiods.get(sync.istiod) if sync is not None and sync.istiod else None
        try:
            found = _check_once(session, proxy_id, pod, sync, istiod, views)
            if any(f.check == LAGGING for f in found):  # maybe a push raced us: look again
                time.sleep(RECHECK_DELAY)
                found = _check_once(session, proxy_id, pod, sync, istiod, views)
            return found
        except NotFoundError as e:
            return [Finding(proxy_id, GONE, f"the pod vanished while it was being verified "
                            f"({e.message})")]
        except UnreachableError as e:
            return [Finding(proxy_id, UNREACHABLE, f"{e}; a paused or overloaded Envoy cannot "
                            "answer its admin API")]

    with views:
        results = for_each(work, check, concurrency=concurrency, stderr=stderr,
                           label="proxies verified", progress_after=0.5)
    for proxy_id, found, error in results:
        if error is not None:  # not a per-proxy condition (e.g. RBAC): the run fails
            raise error
        findings.extend(found)
    return findings


def _check_once(session, proxy_id, pod, sync, istiod, views) -> list[Finding]:
    view = views.submit(_istiod_view, istiod, proxy_id) if istiod is not None else None
    with session.admin(pod) as admin:
        stats = admin.stats(filter=STATS_FILTER)
        # error_state only exists after an LDS rejection: skip the dump when none was counted
        listeners = admin.config_dump(mask=LISTENERS_MASK) if _lds_rejected(stats) else None
    notes: list[Finding] = []
    try:
        dump = view.result() if view is not None else None
    except UnreachableError as e:  # Envoy answered: check what can be, say what could not
        dump = None
        notes.append(Finding(proxy_id, UNREACHABLE, f"istiod {istiod.name} did not give its "
                             f"view of this proxy ({e.message}): versions not compared",
                             severity=WARNING_LEVEL))
    return proxy_findings(proxy_id, sync, envoy_state(stats, listeners), dump) + notes


def _istiod_view(istiod: IstiodDebug, proxy_id: str) -> dict | None:
    try:
        return istiod.config_dump(proxy_id)
    except NotFoundError:
        return None  # it reconnected elsewhere since syncz: no version to compare


def _lds_rejected(stats: dict) -> bool:
    return any(s.get("name") == "listener_manager.lds.update_rejected" and s.get("value")
               for s in stats.get("stats") or [])


def envoy_dump(session, pod) -> dict:
    """The proxy's dynamic clusters, listeners and routes (three masked fetches)."""
    with session.admin(pod) as admin:
        configs = [c for mask in DIFF_MASKS for c in admin.config_dump(mask=mask).get("configs", [])]
    return {"configs": configs}
