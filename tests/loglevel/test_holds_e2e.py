"""`loglevel --for` runs that overlap, get killed, or may not note their hold: end to end
through real kubectl against the sandbox's real Envoys (levels checked on the Envoys)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest

from sandbox.testing import PodPort

from .conftest import envoy_levels

# In the slow matrix (`make test-fast` leaves it out): overlapping --for runs wait out their
# 10-15 s durations (--for runs end to end in test_loglevel_e2e.py).
pytestmark = pytest.mark.slow

GW = ("deploy/istio-ingressgateway", "-n", "istio-system")
PREFIX = "loglevel.kubectl-mesh.io/hold-"


class Run:
    """`kubectl mesh loglevel ...` in the background, its stderr collected as it comes."""

    def __init__(self, mesh, *args: str):
        self.proc = subprocess.Popen(mesh.argv("loglevel", *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=mesh.env())
        self.err: list[str] = []
        self._reader = threading.Thread(
            target=lambda: self.err.extend(iter(self.proc.stderr.readline, "")), daemon=True)
        self._reader.start()

    def wait_for_countdown(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any("restoring the previous levels in" in line for line in self.err):
            assert self.proc.poll() is None, f"the run ended early: {self.err}"
            assert time.monotonic() < deadline, f"no countdown: {self.err}"
            time.sleep(0.05)

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stderr(self) -> str:
        return "".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def gateway(sandbox, mesh):
    """(pod ref, its Envoy's admin port) of the gateway, every logger at warning (reset
    first: real pilot-agent starts Envoy with `misc:error` too, the chart's
    global.proxy.componentLogLevel); its levels are back at warning afterwards."""
    (pod,) = sandbox.pods("istio-system", "app=istio-ingressgateway")
    admin = PodPort(pod, 15000)
    assert mesh("loglevel", *GW, "--reset").returncode == 0
    before = envoy_levels(admin)
    assert set(before.values()) == {"warning"}
    yield f"{pod['metadata']['name']}.istio-system", admin
    for key in hold_notes(sandbox):
        sandbox.kubectl("annotate", "pod", "-n", "istio-system", pod["metadata"]["name"],
                        f"{key}-")
    assert mesh("loglevel", *GW, "--reset").returncode == 0


def hold_notes(sandbox) -> dict[str, dict]:
    (pod,) = sandbox.pods("istio-system", "app=istio-ingressgateway")
    return {k: json.loads(v) for k, v in (pod["metadata"].get("annotations") or {}).items()
            if k.startswith(PREFIX)}


def test_overlapping_for_runs_end_at_the_levels_from_before_the_first(sandbox, mesh, gateway):
    """A (`http:debug --for 10s`), then B (`http:trace --for 15s`): A ends first, sees http is
    no longer the debug it set and leaves it; B ends at warning, the level before A."""
    ref, admin = gateway
    a = Run(mesh, *GW, "--level", "http:debug", "--for", "10s")
    b = None
    try:
        a.wait_for_countdown()
        notes_of_a = hold_notes(sandbox)
        b = Run(mesh, *GW, "--level", "http:trace", "--for", "15s")
        b.wait_for_countdown()
        assert a.proc.poll() is None, "A ended before B started: the runs did not overlap"
        assert envoy_levels(admin)["http"] == "trace"
        notes_of_both = hold_notes(sandbox)
        assert a.wait() == 0, a.stderr()
        http_after_a = envoy_levels(admin)["http"]
        notes_of_b = hold_notes(sandbox)
        assert b.wait() == 0, b.stderr()
    finally:
        a.kill()
        if b is not None:
            b.kill()
    assert set(envoy_levels(admin).values()) == {"warning"}, b.stderr()
    assert http_after_a == "trace", a.stderr()  # A did not undo what B set
    assert f"note: {ref} is held by another loglevel --for: http:debug by " in b.stderr()
    assert f"{ref}: left http at trace: changed by someone else since this hold set " \
           f"http:debug\n" in a.stderr()
    assert f"{ref}: http trace→warning (restored)\n" in b.stderr()
    ((_, note),) = notes_of_a.items()
    assert (note["set"], note["previous"]) == ({"http": "debug"}, {"http": "warning"})
    assert len(notes_of_both) == 2
    ((_, note),) = notes_of_b.items()
    assert (note["set"], note["previous"]) == ({"http": "trace"}, {"http": "warning"})
    assert hold_notes(sandbox) == {}


def test_a_shorter_second_run_hands_back_to_the_first(sandbox, mesh, gateway):
    """A (`http:debug --for 15s`), then B (`http:trace --for 3s`): B ends at A's debug while
    A lasts, then A ends at warning."""
    ref, admin = gateway
    a = Run(mesh, *GW, "--level", "http:debug", "--for", "15s")
    try:
        a.wait_for_countdown()
        b = mesh("loglevel", *GW, "--level", "http:trace", "--for", "3s")
        assert b.returncode == 0, b.stderr
        assert a.proc.poll() is None, "A ended before B: the runs did not overlap"
        assert f"{ref}: http trace→debug (restored)\n" in b.stderr
        assert envoy_levels(admin)["http"] == "debug"
        assert a.wait() == 0, a.stderr()
        assert f"{ref}: http debug→warning (restored)\n" in a.stderr()
    finally:
        a.kill()
    assert set(envoy_levels(admin).values()) == {"warning"}
    assert hold_notes(sandbox) == {}


def test_a_killed_run_leaves_a_hold_that_listing_shows_and_restore_abandoned_finishes(
        sandbox, mesh, gateway):
    ref, admin = gateway
    run = Run(mesh, *GW, "--level", "http:debug,router:trace", "--for", "5m")
    try:
        run.wait_for_countdown()
        run.proc.send_signal(signal.SIGKILL)  # kubectl exec()s the plugin: this is the plugin
        assert run.wait() == -signal.SIGKILL
    finally:
        run.kill()
    levels = envoy_levels(admin)
    assert (levels["http"], levels["router"]) == ("debug", "trace")  # what kill -9 leaves

    listed = mesh("loglevel", *GW)
    assert listed.returncode == 0, listed.stderr
    assert f"note: {ref} has an abandoned hold: http:debug,router:trace by " in listed.stderr
    assert f"'kubectl mesh loglevel {ref} --restore-abandoned' puts back " \
           f"http:warning,router:warning" in listed.stderr

    done = mesh("loglevel", *GW, "--restore-abandoned")
    assert done.returncode == 0, done.stderr
    assert f"{ref}: http debug→warning; router trace→warning (restored)\n" in done.stderr
    assert done.stderr.endswith("finished 1 abandoned hold\n")
    assert set(envoy_levels(admin).values()) == {"warning"}
    assert hold_notes(sandbox) == {}

    again = mesh("loglevel", *GW, "--restore-abandoned")
    assert (again.returncode, again.stderr) == (0, "no abandoned holds on the 1 pod\n")


def test_without_patch_permission_the_hold_warns_once_and_still_restores(
        sandbox, mesh, gateway):
    ref, admin = gateway
    with sandbox.denied("patch pods@istio-system"):
        out = mesh("loglevel", *GW, "--level", "http:debug,router:debug", "--for", "1s")
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and warnings[0].startswith(
        "warning: cannot patch pods in namespace istio-system"), out.stderr
    assert "restored the previous levels on 1 pod" in out.stderr
    assert set(envoy_levels(admin).values()) == {"warning"}
    assert hold_notes(sandbox) == {}
