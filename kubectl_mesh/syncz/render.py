"""The proxy-status table (`NAME CLUSTER CDS LDS EDS RDS ECDS ISTIOD VERSION`), written
through `kubectl_mesh.output.write`.

A type column that is IGNORED (or absent) for every listed proxy is dropped: users found
all-IGNORED columns noise (istio.md). `-o wide` keeps every type column that has any
subscription and adds the proxy type and one `<TYPE> NONCE` column per shown type
(`<sent>` when acked, `<sent> (acked <acked>)` when not), plus `ALSO LISTED BY` when a
proxy was listed by more than one istiod. `-o json|yaml`: every proxy, every
type, with nonces, send times and NACK messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import IO, Sequence

from kubectl_mesh import output
from kubectl_mesh.syncz.model import ERROR, IGNORED, SYNCED, TYPE_NAMES, ProxySync


def shown_types(proxies: Sequence[ProxySync]) -> list[str]:
    """Type columns with at least one non-IGNORED cell, in table order."""
    shown = []
    for name in TYPE_NAMES:
        for p in proxies:
            t = p.type(name)
            if t is not None and t.status != IGNORED:
                shown.append(name)
                break
    return shown


def _nonce(p: ProxySync, name: str) -> str:
    t = p.type(name)
    if t is None or not t.sent:
        return "-"
    if t.sent == t.acked:
        return t.sent
    return f"{t.sent} (acked {t.acked or '-'})"


def table(proxies: Sequence[ProxySync], now: datetime, wide: bool = False
          ) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) for the short or wide table."""
    types = shown_types(proxies)
    headers = ["NAME", "CLUSTER", *types, "ISTIOD", "VERSION"]
    duplicates = wide and any(p.also_listed_by for p in proxies)
    if wide:
        headers += ["TYPE", *(f"{t} NONCE" for t in types)]
        if duplicates:
            headers.append("ALSO LISTED BY")
    rows = []
    for p in proxies:
        cells = [p.type(t) for t in types]
        row = [p.name, p.cluster_id or "-",
               *((c.label(now) if c is not None else IGNORED) for c in cells),
               p.istiod or "-", p.version or "-"]
        if wide:
            row += [p.proxy_type or "-", *(_nonce(p, t) for t in types)]
            if duplicates:
                row.append(",".join(p.also_listed_by) or "-")
        rows.append(row)
    return headers, rows


def notes(proxies: Sequence[ProxySync]) -> list[str]:
    """Messages for stderr: proxies listed by several istiods, and the NACK behind each
    ERROR (the table has no room for it); one line each, control characters escaped."""
    lines = []
    for p in proxies:
        if p.also_listed_by:
            lines.append(f"{p.name} is also listed by {', '.join(p.also_listed_by)} (an old "
                         f"connection?); showing {p.istiod}, the most recent activity")
        for t in p.types:
            if t.status == ERROR:
                lines.append(f"{p.name} rejected {t.type} (NACK): {t.last_error}")
            elif t.type == t.type_url and t.status not in (SYNCED, IGNORED):
                lines.append(f"{p.name}: {t.type_url} is {t.status} (a type with no column)")
    return [output.printable(line) for line in lines]


def data(proxies: Sequence[ProxySync]) -> list[dict]:
    return [p.to_dict() for p in proxies]


def write_status(out: IO[str], fmt: str, proxies: Sequence[ProxySync], now: datetime) -> None:
    """Render `-o short|wide|json|yaml` (`now` makes the ages; inject it in tests)."""
    output.check_format(fmt)
    headers, rows = table(proxies, now, wide=fmt == "wide") if fmt in ("short", "wide") else ([], [])
    output.write(out, fmt, headers=headers, rows=rows, data=data(proxies))
