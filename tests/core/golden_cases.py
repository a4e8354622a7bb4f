"""Golden cases: tests/core/golden/<case>/case.json names the input and the table to build,
expected.txt holds the rendered output. Inputs are the shared read-only dumps
(/work/shared/istio-dumps, real Istio test data, see its README) or a file inside the case dir."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

from kubectl_mesh import output
from kubectl_mesh.configdump import (
    ClusterFilter, EndpointFilter, ListenerFilter, RouteFilter, cluster_table, endpoint_table,
    listener_table, read_dump, route_table, secret_table,
)

GOLDEN = Path(__file__).parent / "golden"
DUMPS = Path("/work/shared/istio-dumps")


def render_case(case_dir: Path) -> str:
    spec = json.loads((case_dir / "case.json").read_text())
    path = case_dir / spec["input"] if (case_dir / spec["input"]).exists() else DUMPS / spec["input"]
    dump = read_dump(str(path))
    fmt = spec.get("format", "short")
    wide = fmt == "wide"
    flt = spec.get("filter", {})
    table = spec["table"]
    if table == "clusters":
        t = cluster_table(dump.clusters, ClusterFilter(**flt), wide=wide)
    elif table == "listeners":
        t = listener_table(dump.listeners, ListenerFilter(**flt),
                           verbose=spec.get("verbose", True), wide=wide)
    elif table == "routes":
        t = route_table(dump.routes, RouteFilter(**flt), verbose=spec.get("verbose", True),
                        wide=wide)
    elif table == "endpoints":
        t = endpoint_table(dump.endpoints, EndpointFilter(**flt), wide=wide)
    elif table == "secrets":
        now = dt.datetime.fromisoformat(spec["now"])
        t = secret_table(dump.secrets, now=now, wide=wide)
    else:
        raise ValueError(f"unknown table {table}")
    out = io.StringIO()
    output.write(out, fmt, headers=t.headers, rows=t.rows, data=t.data, gap=t.gap)
    return out.getvalue()
