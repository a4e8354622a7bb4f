"""Loading the REAL payloads captured from the sandbox (tests/sync/data/, see README there)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from kubectl_mesh.syncz import merge_replicas

DATA = Path(__file__).parent / "data"
GOLDEN = Path(__file__).parent / "golden"


def load(name: str):
    return json.loads((DATA / name).read_text())


def proxies(name: str, istiod: str = "istiod-4f6d6866cb-ea19e"):
    return merge_replicas({istiod: load(name)})


def now_after(proxies_, seconds: float = 42) -> datetime:
    """A fixed `now`: `seconds` after the latest push in the payload (stable ages)."""
    return max(p.last_activity for p in proxies_) + timedelta(seconds=seconds)
