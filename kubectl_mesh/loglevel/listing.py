"""The current levels of one or many proxies as a table and as data.

One pod: `LOGGER LEVEL`. Several pods: one row per logger with the level most pods have, and
the pods that differ called out (`DIFFERING PODS`), so a 20-replica deployment is still 73 rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class LoggerRow:
    name: str
    level: str  # the level most pods have (on a tie: the first pod's)
    differing: tuple[tuple[str, str], ...]  # (pod ref, level) of pods that have another level


@dataclass(frozen=True)
class Listing:
    pods: tuple[str, ...]
    rows: tuple[LoggerRow, ...]

    @classmethod
    def of(cls, levels_by_pod: Sequence[tuple[str, Mapping[str, str]]]) -> Listing:
        """From (pod ref, {logger: level}) per pod; loggers sorted by name. A logger a pod
        lacks (a different Envoy build) shows as `-` for that pod."""
        names = sorted({n for _, levels in levels_by_pod for n in levels})
        rows = []
        for name in names:
            values = [(ref, levels.get(name, "-")) for ref, levels in levels_by_pod]
            counts = Counter(v for _, v in values)
            first = values[0][1]
            majority = max(counts, key=lambda v: (counts[v], v == first))
            rows.append(LoggerRow(name, majority, tuple((r, v) for r, v in values if v != majority)))
        return cls(tuple(ref for ref, _ in levels_by_pod), tuple(rows))

    @property
    def differing_loggers(self) -> list[str]:
        return [r.name for r in self.rows if r.differing]

    def table(self, wide: bool = False) -> tuple[list[str], list[list[str]]]:
        """(headers, rows) for output.write; wide: one column per pod with its own level."""
        if wide:
            return (["LOGGER", *self.pods],
                    [[r.name, *(dict(r.differing).get(pod, r.level) for pod in self.pods)]
                     for r in self.rows])
        if len(self.pods) == 1:
            return ["LOGGER", "LEVEL"], [[r.name, r.level] for r in self.rows]
        return (["LOGGER", "LEVEL", "DIFFERING PODS"],
                [[r.name, r.level, ", ".join(f"{ref}={lvl}" for ref, lvl in r.differing)]
                 for r in self.rows])

    def data(self) -> dict:
        """For -o json|yaml: the same shape for one pod and many."""
        return {
            "pods": list(self.pods),
            "loggers": [{"name": r.name, "level": r.level,
                         "differing": {ref: lvl for ref, lvl in r.differing}} for r in self.rows],
        }

    def summary(self) -> str:
        """One stderr line for several pods: agree, or which loggers differ."""
        differ = self.differing_loggers
        if not differ:
            return f"all {len(self.pods)} pods have the same levels"
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        return f"{len(differ)} of {len(self.rows)} loggers differ between the {len(self.pods)} " \
               f"pods: {shown}"
