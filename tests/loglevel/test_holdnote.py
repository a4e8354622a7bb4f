"""The rules that make overlapping `--for` runs end right (pure: no cluster)."""

from __future__ import annotations

import pytest

from kubectl_mesh.loglevel.holdnote import (
    LEASE_SECONDS,
    HoldNote,
    baseline,
    give_back,
    notes_of,
)
from kubectl_mesh.loglevel.levels import PodPlan

T = 1_800_000_000.0
LOGGERS = {"http": "warning", "router": "warning"}


def note(name: str, started: float, set_: dict, previous: dict) -> HoldNote:
    return HoldNote(id=name, user="alice", host="laptop", pid=10, spec=name, started=started,
                    until=started + 60, renewed=started, set=set_, previous=previous,
                    boot="b1")


def test_a_note_survives_its_annotation_and_rejects_what_is_not_one():
    a = note("a", T, {"http": "debug"}, {"http": "warning"})
    (back,) = notes_of({a.key: a.to_annotation(), "other/annotation": "x",
                        "loglevel.kubectl-mesh.io/hold-bad": "{not json"})
    assert back == a


@pytest.mark.parametrize("now, host, boot, alive, live", [
    (T + 1, "laptop", "b1", True, True),
    (T + 1, "laptop", "b1", False, False),  # this host, process gone: a kill -9
    (T + 1, "elsewhere", "b1", False, True),  # another host: only the lease tells
    (T + 1, "laptop", "b2", False, True),  # rebooted since: the pid means nothing
    (T + LEASE_SECONDS + 1, "elsewhere", "b1", True, False),  # not renewed for a lease
], ids=["running", "process-gone", "other-host", "other-boot", "lease-expired"])
def test_live(now, host, boot, alive, live):
    assert note("a", T, {}, {}).live(now, host, boot, lambda pid: alive) is live


def test_a_run_over_a_live_hold_goes_back_to_the_level_before_that_hold():
    a = note("a", T, {"http": "debug"}, {"http": "warning"})
    b_plan = PodPlan.of("p.ns", {**LOGGERS, "http": "debug"},
                        {**LOGGERS, "http": "trace", "router": "trace"})
    assert baseline(b_plan, [a]) == {"http": "warning", "router": "warning"}
    assert baseline(b_plan, []) == {"http": "debug", "router": "warning"}


@pytest.mark.parametrize("first_to_end", ["a", "b"])
def test_overlapping_holds_end_at_the_level_before_the_first_whichever_ends_first(
        first_to_end):
    a = note("a", T, {"http": "debug"}, {"http": "warning"})
    b = note("b", T + 5, {"http": "trace"}, {"http": "warning"})
    levels = {**LOGGERS, "http": "trace"}
    order = [(a, [b]), (b, [])] if first_to_end == "a" else [(b, [a]), (a, [])]
    for ours, others in order:
        result = give_back("p.ns", ours, levels, others)
        levels.update(result.plan.after)
    assert levels == LOGGERS


def test_a_logger_changed_since_is_left_and_the_rest_given_back():
    ours = note("a", T, {"http": "debug", "router": "debug"},
                {"http": "warning", "router": "info"})
    result = give_back("p.ns", ours, {"http": "error", "router": "debug"}, [])
    assert dict(result.changed_since) == {"http": ("error", "debug")}
    assert result.plan.forward() == {"router": "info"}


def test_a_logger_another_live_hold_set_goes_to_that_holds_level():
    older = note("a", T, {"http": "debug"}, {"http": "warning"})
    ours = note("b", T + 5, {"http": "trace"}, {"http": "warning"})
    result = give_back("p.ns", ours, {**LOGGERS, "http": "trace"}, [older])
    assert result.plan.forward() == {"http": "debug"} and result.kept_for["http"] is older
