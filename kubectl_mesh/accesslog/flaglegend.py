"""The flag legend under a table and `--explain`: each flag in words, with who decided.

(Not `legend.py`: a submodule of that name would shadow the package's `legend()` function.)
"""

from __future__ import annotations

from typing import IO, Iterable

from kubectl_mesh.accesslog.flags import FLAGS, lookup, normalize
from kubectl_mesh.output import printable

SIDES = {"proxy": "decided by the proxy (Envoy)",
         "upstream": "decided by the application (upstream)",
         "downstream": "decided by the client (downstream)",
         "policy": "decided by configured policy", "unknown": "decided by: unknown"}


def legend_lines(flags: Iterable[str]) -> list[str]:
    """`UT  upstream request timeout – decided by the proxy (Envoy): ...` per distinct flag,
    known flags in Envoy's table order, then unknown ones (control characters escaped: an
    unknown flag is whatever the log line held)."""
    order = {short: i for i, short in enumerate(FLAGS)}
    shorts = sorted({normalize(f) for f in flags}, key=lambda f: (order.get(f, len(order)), f))
    width = max((len(s) for s in shorts), default=0)
    lines = []
    for short in shorts:
        flag = lookup(short)
        lines.append(printable(f"{short:<{width}}  {flag.meaning} – "
                               f"{SIDES.get(flag.side, flag.side)}: {flag.why}"))
    return lines


def write_legend(out: IO[str], flags: Iterable[str]) -> None:
    """`\\nFLAGS:\\n  UT  ...` for the flags present; nothing when there are none."""
    lines = legend_lines(flags)
    if lines:
        out.write("\nFLAGS:\n" + "".join(f"  {line}\n" for line in lines))
