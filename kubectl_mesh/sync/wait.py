"""`--wait`: poll until every selected proxy is SYNCED on every type it subscribed to, and
has stayed so on the same pushes for SETTLE seconds (istiod's debounce).

"Every selected proxy" includes the proxy pods the cluster runs in the selection that no
istiod lists yet: right after `kubectl apply`, a new pod's Envoy may not have connected, and
an empty or partial syncz must not count as done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Callable, Sequence

from kubectl_mesh.syncz import IGNORED, SYNCED, ProxySync, all_synced, not_synced

DEFAULT_INTERVAL = 0.5
PROGRESS_EVERY = 5.0  # repeat an unchanged progress line this often (CI logs show liveness)
# istiod debounces a change (100 ms by default) before it pushes, so a poll right after
# `kubectl apply` can still see every proxy SYNCED on the old config. Done means: SYNCED on
# the same pushes (sent nonces) for this long.
SETTLE = 1.0


@dataclass(frozen=True)
class Snapshot:
    """One poll: the selected proxies istiod lists, and pods no istiod lists yet."""

    proxies: Sequence[ProxySync]
    missing: Sequence[str] = field(default_factory=tuple)  # pod refs
    error: str | None = None  # this poll failed (e.g. istiod busy); the next one retries

    @property
    def done(self) -> bool:
        return self.error is None and not self.missing and all_synced(self.proxies)

    def pushes(self) -> tuple:
        """What istiod last sent each selected proxy (nonces; over XDS, which has none, the
        send times): a new push changes it."""
        return tuple(sorted((p.name, t.type, t.sent or (t.sent_time.isoformat()
                                                        if t.sent_time else ""))
                            for p in self.proxies for t in p.types))

    def summary(self, now: datetime | None = None) -> str:
        """`2/3 proxies SYNCED; waiting for catalog-x.ns (CDS STALE (12s)), ...`."""
        if self.error:
            return f"retrying: {self.error}"
        now = now or datetime.now(timezone.utc)
        total = len(self.proxies) + len(self.missing)
        pending = not_synced(self.proxies)
        synced = len(self.proxies) - len(pending)
        waiting = [f"{p.name} ({_not_synced_types(p, now)})" for p in pending]
        waiting += [f"{ref} (not connected to istiod yet)" for ref in self.missing]
        text = f"{synced}/{total} proxies SYNCED"
        if not total:
            text = "no proxies selected yet"
        if waiting:
            text += "; waiting for " + ", ".join(waiting[:3])
            if len(waiting) > 3:
                text += f" and {len(waiting) - 3} more"
        return text


def _not_synced_types(p: ProxySync, now: datetime) -> str:
    return ", ".join(f"{t.type} {t.label(now)}" for t in p.types
                     if t.status not in (SYNCED, IGNORED)) or "?"


def wait_for_sync(poll: Callable[[], Snapshot], *, timeout: float,
                  interval: float = DEFAULT_INTERVAL, settle: float = SETTLE,
                  stderr: IO[str] | None = None,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> tuple[bool, Snapshot]:
    """Poll until `poll()` has been done on the same pushes for `settle` seconds, or
    `timeout` seconds pass: (done, last snapshot). At the deadline, done is the last poll's.

    Progress goes to stderr as whole lines (readable in CI logs): when it changes, and every
    PROGRESS_EVERY seconds while it does not.
    """
    deadline = clock() + timeout
    last_line, last_time = "", float("-inf")
    settled_on, since = None, 0.0  # the pushes every proxy is SYNCED on, and since when
    while True:
        snap = poll()
        now = clock()
        if snap.done:
            pushes = snap.pushes()
            if pushes != settled_on:
                settled_on, since = pushes, now
            if now - since >= settle or now >= deadline:
                if stderr is not None and last_line:
                    stderr.write(f"sync: {snap.summary()}\n")
                return True, snap
            sleep(max(0.0, min(interval, deadline - now)))
            continue
        settled_on = None
        if now >= deadline:
            return False, snap
        line = snap.summary()
        # Ages in the line change every second: compare without them.
        key = _without_ages(line)
        if stderr is not None and (key != _without_ages(last_line) or
                                   now - last_time >= PROGRESS_EVERY):
            stderr.write(f"sync: waiting ({deadline - now:.0f}s left): {line}\n")
            stderr.flush()
            last_line, last_time = line, now
        sleep(max(0.0, min(interval, deadline - now)))


def _without_ages(text: str) -> str:
    import re

    return re.sub(r" \(\d[\dsmhdy]*\)", "", text)
