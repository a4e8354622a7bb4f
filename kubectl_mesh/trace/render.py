"""The trace as readable text for stdout: the chain of hops, then Envoy's answer, the Istio
object responsible, the fix and any caveats."""

from __future__ import annotations

from kubectl_mesh.output import colour, printable
from kubectl_mesh.trace.verdict import TraceResult

_MAX_ENDPOINTS = 10  # per cluster; the rest are counted

# A line is a list of segments (text, colour name or None).
Line = list[tuple[str, str | None]]


def render_trace(result: TraceResult, use_colour: bool = False) -> str:
    """Multi-line text, ending with a newline; `use_colour` adds ANSI colours (terminals).
    Control characters from the URL, headers and the dump are escaped (`output.printable`)
    segment by segment, before the colours are added."""
    return "".join("".join(colour(printable(text), style, use_colour) if style
                           else printable(text) for text, style in line).rstrip() + "\n"
                   for line in _lines(result))


def _lines(result: TraceResult) -> list[Line]:
    req = result.request
    lines: list[Line] = [[(f"{req.method} {req.url}", "bold")]]
    where = f"Host {req.host}, port {req.port}"
    if result.port != req.port:
        where += f" → proxy port {result.port}"
    extra = "".join(f", {k}: {val}" for k, val in req.headers)
    lines.append([(f"  {where}{extra}", None)])
    width = max((len(h.stage) for h in result.hops), default=0)
    endpoints = {c.name: c for c in result.clusters}
    for hop in result.hops:
        mark = ("✓", "green") if hop.ok else ("✗", "red")
        lines.append([("  ", None), mark, (f" {hop.stage:<{width}}  {hop.name}  {hop.detail}", None)])
        target = endpoints.get(hop.name) if hop.stage == "cluster" else None
        if target is not None and target.endpoints:
            pad = " " * (width + 6)
            for e in target.endpoints[:_MAX_ENDPOINTS]:
                state = e.health + (" outlier-ejected" if e.outlier_failed else "")
                lines.append([(f"{pad}{e.address}  {state}", None)])
            if len(target.endpoints) > _MAX_ENDPOINTS:
                lines.append([(f"{pad}... {len(target.endpoints) - _MAX_ENDPOINTS} more", None)])
    if result.ok:
        verdict = "routed" if not result.answers else \
            "; ".join(a.describe() for a in result.answers)
        lines.append([(f"OK: {result.outcome}", "green"),
                      ("" if verdict == "routed" else f" – Envoy answers {verdict}", None)])
    else:
        answer = "; ".join(a.describe() for a in result.answers) or result.outcome
        lines.append([(f"BROKEN: Envoy answers {answer}", "red")])
    if result.responsible:
        lines.append([(f"  responsible: {result.responsible}", None)])
    for fix in result.fixes:
        lines.append([(f"  fix: {fix}", None)])
    for note in result.notes:
        lines.append([(f"  note: {note}", "dim")])
    return lines
