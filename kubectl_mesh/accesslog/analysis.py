"""Summaries of access-log records: grouping (`--by`), percentiles, merging pods by time."""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import Counter
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from kubectl_mesh.accesslog.flags import normalize
from kubectl_mesh.accesslog.record import AccessLogRecord
from kubectl_mesh.errors import UsageError

GROUP_KEYS = ("upstream", "cluster", "flag", "code", "route")
NONE_KEY = "-"


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values: the smallest value such that at
    least p % of the values are ≤ it (rank ⌈p/100·n⌉). Always an observed duration, never an
    interpolated one – with few requests p99 is simply the slowest. None if empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclasses.dataclass(frozen=True)
class GroupRow:
    """One `--by` group. `key` is the raw value (upstream host, cluster, flag, code, route,
    `-` when unset); `label` is what the table shows (for upstream: the pod name when known)."""

    key: str
    label: str
    count: int
    errors: int  # 5xx + code 0
    p50_ms: float | None
    p99_ms: float | None
    flags: tuple[tuple[str, int], ...]  # (flag, count), most frequent first
    codes: tuple[tuple[int, int], ...]  # (code, count), most frequent first

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def to_dict(self) -> dict:
        return {"key": self.key, "label": self.label, "count": self.count,
                "errors": self.errors, "errorRate": round(self.error_rate, 4),
                "p50Ms": self.p50_ms, "p99Ms": self.p99_ms,
                "flags": dict(self.flags), "codes": {str(c): n for c, n in self.codes}}


def _keys(record: AccessLogRecord, by: str) -> tuple[str, ...]:
    if by == "upstream":
        return (record.upstream_host or NONE_KEY,)
    if by == "cluster":
        return (record.upstream_cluster or NONE_KEY,)
    if by == "code":
        return (str(record.response_code),)
    if by == "route":
        return (record.route_name or NONE_KEY,)
    # by flag: a request with two flags (URX,UF) counts in both groups.
    return tuple(normalize(f) for f in record.response_flags) or (NONE_KEY,)


def group_records(records: Iterable[AccessLogRecord], by: str,
                  pod_of: Callable[[str], str | None] | None = None) -> list[GroupRow]:
    """Group and summarise; rows by count (descending), then key. `pod_of(ip)` (upstream
    only) names the pod behind an upstream IP, or None when unknown. Keeps each group's
    durations in memory (needed for exact percentiles): O(records), unlike parsing."""
    if by not in GROUP_KEYS:
        raise UsageError(f"unknown --by {by!r}; allowed: {', '.join(GROUP_KEYS)}")
    durations: dict[str, list[int]] = {}
    errors: Counter[str] = Counter()
    flags: dict[str, Counter[str]] = {}
    codes: dict[str, Counter[int]] = {}
    ips: dict[str, str | None] = {}
    for record in records:
        for key in _keys(record, by):
            if key not in durations:
                durations[key] = []
                flags[key] = Counter()
                codes[key] = Counter()
                ips[key] = record.upstream_ip
            durations[key].append(record.duration)
            if record.is_error:
                errors[key] += 1
            flags[key].update(normalize(f) for f in record.response_flags)
            codes[key][record.response_code] += 1
    rows = []
    for key, values in durations.items():
        values.sort()
        label = key
        if by == "upstream" and pod_of is not None and ips[key]:
            pod = pod_of(ips[key])
            if pod:
                label = pod
        rows.append(GroupRow(key, label, len(values), errors[key], percentile(values, 50),
                             percentile(values, 99), tuple(flags[key].most_common()),
                             tuple(codes[key].most_common())))
    rows.sort(key=lambda r: (-r.count, r.key))
    return rows


def merge_by_time(streams: Mapping[str, Iterable[AccessLogRecord]]
                  ) -> Iterator[AccessLogRecord]:
    """Merge per-pod record streams (each already in time order, as a proxy writes them)
    into one time-ordered stream, each record carrying its pod name. Lazy: holds one
    pending record per pod. Ties keep pod-name order."""

    def tagged(pod: str, records: Iterable[AccessLogRecord]):
        for r in records:
            yield r if r.pod == pod else dataclasses.replace(r, pod=pod)

    iterables = [tagged(pod, streams[pod]) for pod in sorted(streams)]
    return heapq.merge(*iterables, key=lambda r: r.start_time)
