"""Golden cases: tests/syncz/golden/<case>/case.json names the syncz payloads (one per
istiod replica, files in golden/_payloads/), `now` and the format; expected.txt holds the
output. Payloads are hand-written after istio.md until captured ones are added."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

from kubectl_mesh.syncz import merge_replicas, write_status

GOLDEN = Path(__file__).parent / "golden"
PAYLOADS = GOLDEN / "_payloads"


def render_case(case_dir: Path) -> str:
    spec = json.loads((case_dir / "case.json").read_text())
    payloads = {istiod: json.loads((PAYLOADS / name).read_text())
                for istiod, name in spec["istiods"].items()}
    proxies = merge_replicas(payloads)
    out = io.StringIO()
    write_status(out, spec.get("format", "short"), proxies, datetime.fromisoformat(spec["now"]))
    return out.getvalue()
