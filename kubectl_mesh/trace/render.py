"""The trace as readable text for stdout: the chain of hops, then Envoy's answer, the Istio
object responsible, the fix and any caveats."""

from __future__ import annotations

from kubectl_mesh.output import colour
from kubectl_mesh.trace.verdict import TraceResult

_MAX_ENDPOINTS = 10  # per cluster; the rest are counted


def render_trace(result: TraceResult, use_colour: bool = False) -> str:
    """Multi-line text, ending with a newline; `use_colour` adds ANSI colours (terminals)."""
    req = result.request
    lines = [colour(f"{req.method} {req.url}", "bold", use_colour)]
    where = f"Host {req.host}, port {req.port}"
    if result.port != req.port:
        where += f" → proxy port {result.port}"
    extra = "".join(f", {k}: {val}" for k, val in req.headers)
    lines.append(f"  {where}{extra}")
    width = max((len(h.stage) for h in result.hops), default=0)
    endpoints = {c.name: c for c in result.clusters}
    for hop in result.hops:
        mark = colour("✓", "green", use_colour) if hop.ok else colour("✗", "red", use_colour)
        lines.append(f"  {mark} {hop.stage:<{width}}  {hop.name}  {hop.detail}".rstrip())
        target = endpoints.get(hop.name) if hop.stage == "cluster" else None
        if target is not None and target.endpoints:
            pad = " " * (width + 6)
            for e in target.endpoints[:_MAX_ENDPOINTS]:
                state = e.health + (" outlier-ejected" if e.outlier_failed else "")
                lines.append(f"{pad}{e.address}  {state}")
            if len(target.endpoints) > _MAX_ENDPOINTS:
                lines.append(f"{pad}... {len(target.endpoints) - _MAX_ENDPOINTS} more")
    if result.ok:
        verdict = "routed" if not result.answers else \
            "; ".join(a.describe() for a in result.answers)
        lines.append(colour(f"OK: {result.outcome}", "green", use_colour)
                     + ("" if verdict == "routed" else f" – Envoy answers {verdict}"))
    else:
        answer = "; ".join(a.describe() for a in result.answers) or result.outcome
        lines.append(colour(f"BROKEN: Envoy answers {answer}", "red", use_colour))
    if result.responsible:
        lines.append(f"  responsible: {result.responsible}")
    for fix in result.fixes:
        lines.append(f"  fix: {fix}")
    for note in result.notes:
        lines.append(colour(f"  note: {note}", "dim", use_colour))
    return "\n".join(lines) + "\n"
