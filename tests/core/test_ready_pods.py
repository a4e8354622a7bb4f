"""The one rule for which pods of a target a command works on (`session.ready_pods`), used by
loglevel, accesslog and sniff alike."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest

from kubectl_mesh.session import ready_pods


@dataclass(frozen=True)
class Pod:
    name: str
    ready: bool

    @property
    def ref(self) -> str:
        return f"{self.name}.ns"


@pytest.mark.parametrize("pods, chosen, said", [
    ([Pod("a", False)], ["a"], ""),
    ([Pod("a", True), Pod("b", False), Pod("c", True)], ["a", "c"], "skipping b.ns: not Ready\n"),
    ([Pod("a", False), Pod("b", False)], ["a", "b"],
     "note: no pod of deploy/x is Ready; using all 2 Running\n"),
    ([Pod("a", True), Pod("b", True)], ["a", "b"], ""),
], ids=["lone-unready", "skips-unready", "none-ready", "all-ready"])
def test_ready_pods(pods, chosen, said):
    err = io.StringIO()
    assert [p.name for p in ready_pods(pods, "deploy/x", err)] == chosen
    assert err.getvalue() == said
