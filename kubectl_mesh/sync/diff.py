"""`--diff`: istiod's view of one proxy against the proxy's own config dump, like
`istioctl proxy-status <pod>`: clusters, listeners and routes, with version_info and
last_updated stripped, sorted by name, as unified diffs under `Clusters Match` /
`Clusters Don't Match` (and the same for Listeners and Routes).

istiod writes its dump through protojson without original field names (`writeJSON` in
pilot/pkg/xds/debug.go, pkg/util/protomarshal): camelCase keys, inside the resources too.
Envoy's admin API writes snake_case, and older istiods and saved files may use either.
istioctl's comparator reads both into protos and writes them alike through protomarshal
(istioctl/pkg/writer/compare): camelCase. Here both sides are put in that spelling
(`keys.canonical`: snake → camel is a function of the name; the other way is not, and would
also rename the keys of Struct values such as a transport socket match's `tlsMode`).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from kubectl_mesh.configdump.keys import canonical

SECTIONS = ("Clusters", "Listeners", "Routes")


@dataclass(frozen=True)
class SectionDiff:
    section: str  # Clusters, Listeners, Routes
    diff: str  # unified diff, "" when they match
    istiod_count: int
    envoy_count: int

    @property
    def match(self) -> bool:
        return not self.diff

    def headline(self) -> str:
        return f"{self.section} Match" if self.match else f"{self.section} Don't Match"

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.section, "match": self.match, "istiod": self.istiod_count,
                "envoy": self.envoy_count, "diff": self.diff}


def _configs(dump: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    """The dump's `kind` sections, with protojson's camelCase keys throughout."""
    return [canonical(c) for c in (dump or {}).get("configs") or []
            if isinstance(c, Mapping) and str(c.get("@type", "")).endswith("." + kind)]


def clusters(dump: Mapping[str, Any]) -> list[dict]:
    """Active dynamic clusters, by name (warming ones are not yet in use)."""
    items = [c.get("cluster") or {} for cfg in _configs(dump, "ClustersConfigDump")
             for c in cfg.get("dynamicActiveClusters") or []]
    return sorted(items, key=lambda c: c.get("name", ""))


def listeners(dump: Mapping[str, Any]) -> list[dict]:
    """Dynamic listeners by name: the active config, and Envoy's error (minus its time) when
    it rejected an update – that is part of what differs."""
    items = []
    for cfg in _configs(dump, "ListenersConfigDump"):
        for item in cfg.get("dynamicListeners") or []:
            entry: dict[str, Any] = {"name": item.get("name", "")}
            for state in ("activeState", "warmingState"):
                if (item.get(state) or {}).get("listener"):
                    entry[state] = item[state]["listener"]
            error = item.get("errorState")
            if error:
                entry["errorState"] = {k: v for k, v in error.items()
                                       if k != "lastUpdateAttempt"}
            items.append(entry)
    return sorted(items, key=lambda c: c["name"])


def routes(dump: Mapping[str, Any]) -> list[dict]:
    items = [r.get("routeConfig") or {} for cfg in _configs(dump, "RoutesConfigDump")
             for r in cfg.get("dynamicRouteConfigs") or []]
    return sorted(items, key=lambda r: r.get("name", ""))


def _text(items: list[dict]) -> list[str]:
    return json.dumps(items, indent=2, sort_keys=True, ensure_ascii=False).splitlines(True)


def _same(want: list[dict], have: list[dict]) -> bool:
    """Whether the two sides would print alike: their compact JSON compared (json's C
    encoder; the indented text goes through its Python encoder, ~10× slower)."""
    return json.dumps(want, sort_keys=True, ensure_ascii=False) == \
        json.dumps(have, sort_keys=True, ensure_ascii=False)


def unified_diff(a: list[str], b: list[str], fromfile: str, tofile: str, n: int = 3) -> str:
    """difflib's unified diff of `a` and `b` (lines ending in newlines), '' when they are
    equal. difflib only sees what lies between the common leading and trailing lines (plus
    `n` lines of context), its hunk headers shifted back: its matcher grows quadratically in
    lines that repeat (`}`, `"name": ...`), ~90 s for 240,000 lines of clusters."""
    if a == b:
        return ""
    size = min(len(a), len(b))
    head = 0
    while head < size and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < size - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    start = max(0, head - n)
    cut = max(0, tail - n)
    lines = difflib.unified_diff(a[start:len(a) - cut], b[start:len(b) - cut],
                                 fromfile=fromfile, tofile=tofile, n=n)
    out = []
    for line in lines:
        if start and line.startswith("@@ "):
            line = _shift_hunk(line, start)
        out.append(line if line.endswith("\n") else line + "\n")
    return "".join(out)


def _shift_hunk(header: str, offset: int) -> str:
    """`@@ -3,4 +3,5 @@` with both starting lines moved down by `offset`."""
    _, old, new, *rest = header.split(" ")
    def move(r: str) -> str:
        first, sep, count = r[1:].partition(",")
        return f"{r[0]}{int(first) + offset}{sep}{count}"
    return " ".join(["@@", move(old), move(new), *rest])


def compare(istiod_dump: Mapping[str, Any], envoy_dump: Mapping[str, Any],
            context: int = 3) -> list[SectionDiff]:
    """One SectionDiff per section, in the order Clusters, Listeners, Routes."""
    out = []
    for section, extract in zip(SECTIONS, (clusters, listeners, routes)):
        want, have = extract(istiod_dump), extract(envoy_dump)
        diff = "" if _same(want, have) else unified_diff(
            _text(want), _text(have), f"Istiod {section}", f"Envoy {section}", context)
        out.append(SectionDiff(section, diff, len(want), len(have)))
    return out


def render(diffs: list[SectionDiff]) -> str:
    """istioctl's layout: the headline, then the diff when they differ."""
    parts = []
    for d in diffs:
        parts.append(d.headline() + "\n")
        if d.diff:
            parts.append(d.diff)
    return "".join(parts)
