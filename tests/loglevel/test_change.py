"""Change with rollback, restore with retries, interrupts - against fake Envoys."""

from __future__ import annotations

import os
import signal

import pytest

from kubectl_mesh.errors import ExitCode, UsageError
from kubectl_mesh.loglevel import change, hold
from kubectl_mesh.loglevel.levels import LevelSpec

from .fake_envoy import FakeMesh


def run(mesh: FakeMesh, spec: str, concurrency: int = 4, say=None):
    lines: list[str] = []
    plans = change.change_levels(mesh.pods, LevelSpec.parse(spec), mesh.connect,
                                 concurrency=concurrency, say=say or lines.append)
    return plans, lines


def test_sets_every_pod_and_reports_each_change():
    mesh = FakeMesh(3)
    plans, lines = run(mesh, "http:debug")
    assert [p.levels["http"] for p in mesh.pods] == ["debug"] * 3
    assert sorted(lines) == [f"p{i}.ns: http warning→debug" for i in range(3)]
    assert all(p.sets == [{"http": "debug"}] for p in mesh.pods)  # only what moves is sent


def test_pods_already_at_the_level_are_not_touched():
    mesh = FakeMesh(2)
    mesh.pods[1].levels["http"] = "debug"
    _, lines = run(mesh, "http:debug")
    assert mesh.pods[1].sets == [] and "p1.ns: unchanged" in lines


def test_bad_logger_touches_no_pod():
    mesh = FakeMesh(3)
    with pytest.raises(UsageError):
        run(mesh, "http:debug,rooter:debug")
    assert all(p.sets == [] for p in mesh.pods)


def test_unreadable_pod_means_nothing_changes():
    mesh = FakeMesh(3)
    mesh.pods[2].fail_connects = 1
    with pytest.raises(change.ChangeFailed) as e:
        run(mesh, "debug")
    assert e.value.exit_code == ExitCode.UNREACHABLE
    assert str(e.value) == "port-forward to p2.ns dropped; nothing was changed"
    assert all(p.sets == [] for p in mesh.pods)


def test_failure_part_way_puts_the_others_back_exactly():
    mesh = FakeMesh(3)
    mesh.pods[0].levels["router"] = "info"
    before = mesh.levels()
    mesh.pods[1].fail_sets = 1
    with pytest.raises(change.ChangeFailed) as e:
        run(mesh, "debug", concurrency=1)
    assert mesh.levels()[0] == before[0] and mesh.levels()[2] == before[2]
    assert mesh.pods[2].sets == []  # after a failure, no further pod is touched
    assert e.value.exit_code == ExitCode.UNREACHABLE
    assert str(e.value) == (
        "changing levels failed on 1 of 3 pods: p1.ns: Envoy admin of p1.ns did not answer "
        "/logging within 1s; put back the 1 pod already changed (p0.ns); not attempted: p2.ns; "
        "the levels of p1.ns are unknown (a change sent to a pod that did not answer may still "
        "apply when it recovers)")


def test_failure_with_concurrency_puts_back_every_changed_pod():
    mesh = FakeMesh(4)
    mesh.pods[3].fail_sets = 1
    with pytest.raises(change.ChangeFailed) as e:
        run(mesh, "http:debug", concurrency=4)
    assert [p.levels["http"] for p in mesh.pods] == ["warning"] * 4
    assert "put back the 3 pods already changed (" in str(e.value)


def test_rejected_change_is_not_unknown_and_nothing_was_changed():
    mesh = FakeMesh(1)
    mesh.pods[0].reject_sets = True
    with pytest.raises(change.ChangeFailed) as e:
        run(mesh, "debug")
    assert str(e.value).endswith("; no pod was changed") and "unknown" not in str(e.value)


def test_rollback_that_fails_is_exit_1_and_says_what_is_left(monkeypatch):
    monkeypatch.setattr(change, "RETRY_BACKOFF", 0.01)
    mesh = FakeMesh(2)
    mesh.pods[1].fail_sets = 1

    def say(line):
        if line.startswith("p0.ns: all") or line.startswith("p0.ns: admin"):
            mesh.pods[0].fail_connects = 5  # p0 becomes unreachable right after its change

    with pytest.raises(change.ChangeFailed) as e:
        run(mesh, "debug", concurrency=1, say=say)
    assert e.value.exit_code == ExitCode.FAILURE
    assert "put back 0 pods, but could not put back 1 pod: p0.ns (admin is debug, was " \
           "warning, http is debug, was warning" in str(e.value)


def test_interrupt_during_the_change_puts_changed_pods_back_and_reraises():
    mesh = FakeMesh(4)
    lines = []

    def say(line):
        lines.append(line)
        if len(lines) == 2:
            raise KeyboardInterrupt  # as SIGINT would, in the main thread

    with pytest.raises(KeyboardInterrupt):
        run(mesh, "http:trace", concurrency=1, say=say)
    assert [p.levels["http"] for p in mesh.pods] == ["warning"] * 4
    assert any(line.startswith("interrupted: putting back") for line in lines)


def test_restore_retries_a_dropped_port_forward(monkeypatch):
    monkeypatch.setattr(change, "RETRY_BACKOFF", 0.01)
    mesh = FakeMesh(2)
    plans, _ = run(mesh, "http:debug")
    mesh.pods[0].fail_sets = 2  # fails twice, then works (3 attempts)
    mesh.pods[1].fail_sets = 3  # never works
    lines = []
    back = change.restore(plans, mesh.connect, concurrency=2, say=lines.append)
    assert [p.ref for p in back.changed] == ["p0.ns"] and mesh.pods[0].levels["http"] == "warning"
    assert [p.ref for p, _ in back.failed] == ["p1.ns"]
    assert "p0.ns: http debug→warning (restored)" in lines
    assert change.not_restored_message(back.failed, "restore").startswith(
        "could not restore 1 pod: p1.ns (http is debug, was warning: Envoy admin of p1.ns")


def test_concurrency_is_bounded_and_used():
    mesh = FakeMesh(8)
    for p in mesh.pods:
        p.delay = 0.02
    run(mesh, "debug", concurrency=3)
    assert mesh.max_in_flight == 3
    mesh = FakeMesh(4)
    run(mesh, "debug", concurrency=1)
    assert mesh.max_in_flight == 1


def test_sigterm_becomes_terminated_and_restore_defers_signals():
    with pytest.raises(hold.Terminated) as e:
        with hold.ending_signals_raise():
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before kill() returns
    assert e.value.exit_code == 143
    told = []
    with hold.deferred(told.append) as got:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
    assert got == [signal.SIGINT, signal.SIGTERM] and "finishing the restore first" in told[0]


def test_countdown_on_a_pipe_is_short_and_on_time():
    class Clock:
        now = 0.0

        def sleep(self, s):
            self.now += s

        def __call__(self):
            return self.now

    import io
    clock, err = Clock(), io.StringIO()
    hold.countdown(125, err, sleep=clock.sleep, clock=clock)
    assert clock.now == pytest.approx(125)
    assert err.getvalue().splitlines() == [
        "restoring the previous levels in 2m05s (Ctrl-C to restore now)",
        "restoring the previous levels in 1m59s", "restoring the previous levels in 59s"]
    assert hold.format_remaining(3725) == "1h02m05s"


def test_a_hold_not_given_back_keeps_its_note_for_restore_abandoned(monkeypatch):
    from kubectl_mesh.loglevel import holding
    from kubectl_mesh.loglevel.podnotes import PodNotes

    from .fake_envoy import FakePodApi

    monkeypatch.setattr(change, "RETRY_BACKOFF", 0.01)
    mesh, api, lines = FakeMesh(2), FakePodApi(), []
    notes = PodNotes(api, lines.append)
    holds = holding.Holding(notes, "http:debug", 60, lines.append, concurrency=2)
    plans = change.change_levels(mesh.pods, LevelSpec.parse("http:debug"), mesh.connect,
                                 concurrency=2, say=lines.append, before_change=holds.begin)
    assert all(len(api.annotations[p.name]) == 1 for p in mesh.pods)
    mesh.pods[1].fail_connects = 10
    ended = holds.end(plans, mesh.connect)
    holds.forget()
    assert [p.ref for p, _ in ended.failed] == ["p1.ns"]
    assert mesh.pods[0].levels["http"] == "warning" and mesh.pods[1].levels["http"] == "debug"
    assert api.annotations["p0"] == {} and len(api.annotations["p1"]) == 1

    mesh.pods[1].fail_connects = 0  # the pod answers again; the run has ended (not live)
    later = PodNotes(api, lines.append, host="another-host",
                     clock=lambda: notes.clock() + 3600)
    finished, failed = holding.restore_abandoned(mesh.pods, later, mesh.connect,
                                                 concurrency=2, say=lines.append)
    assert (finished, failed) == (1, [])
    assert mesh.pods[1].levels["http"] == "warning" and api.annotations["p1"] == {}
