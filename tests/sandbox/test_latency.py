"""The API double's modelled round-trip time (`python -m sandbox rtt 20ms`).

Only lower bounds on elapsed time are asserted: a loaded machine makes things slower, never
faster, so these cannot flake; a broken delay (none, or once per connection instead of per
request/message) fails them."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from kubectl_mesh.clusteroptions import ClusterOptions
from kubectl_mesh.session import Session
from sandbox.apiserver.latency import Latency, parse_rtt, write_rtt
from sandbox.testing import ROOT

RTT = 0.25


@pytest.mark.parametrize("text, seconds", [("20ms", 0.02), ("0.5s", 0.5), ("0.02", 0.02),
                                           ("0", 0.0), (" 1.5ms\n", 0.0015)])
def test_parse_rtt(text, seconds):
    assert parse_rtt(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "-1ms", "nan", "20 m"])
def test_parse_rtt_refuses(text):
    with pytest.raises(ValueError):
        parse_rtt(text)


def test_setting_is_read_when_it_changes_and_cleared_by_zero(tmp_path):
    latency = Latency(tmp_path)
    assert latency.rtt() == 0
    write_rtt(tmp_path, 0.03)
    assert latency.rtt() == pytest.approx(0.03)
    write_rtt(tmp_path, 0.07)
    assert latency.rtt() == pytest.approx(0.07)
    write_rtt(tmp_path, 0)
    assert latency.rtt() == 0 and not (tmp_path / "api-rtt").exists()
    assert Latency(None).rtt() == 0


def test_delay_line_keeps_order_and_delays_each_message_not_the_sender(tmp_path):
    write_rtt(tmp_path, 0.2)
    got: list[tuple[float, bytes]] = []
    send = Latency(tmp_path).delay_line(lambda m: got.append((time.monotonic(), m)))
    started = time.monotonic()
    for i in range(5):
        send(b"%d" % i)
    queued = time.monotonic() - started
    send(None)  # drains
    assert [m for _, m in got] == [b"0", b"1", b"2", b"3", b"4"]
    assert all(t - started >= 0.2 for t, _ in got)
    # A burst is not serialised: the sender never waited a round trip per message...
    assert queued < 0.2
    # ...so five messages are out long before five round trips (lower-bound style: the
    # last one left at most one RTT after it was queued, plus scheduling).
    assert got[-1][0] - got[0][0] < 0.2 * 4


@pytest.mark.double_only("the round trip is the double's model (set_rtt)")
@pytest.mark.slow  # pays modelled round trips
def test_cli_sets_and_refuses(sandbox):
    run = lambda *a: subprocess.run([sys.executable, "-m", "sandbox", "rtt", *a,  # noqa: E731
                                     "--state", str(sandbox.state)], cwd=ROOT,
                                    capture_output=True, text=True, timeout=30)
    bad = run("soon")
    assert bad.returncode == 2 and "not a round-trip time" in bad.stderr
    ok = run("40ms")
    try:
        assert ok.returncode == 0 and "40 ms" in ok.stdout
        assert (sandbox.state / "api-rtt").read_text().strip() == "0.04"
    finally:
        assert run("0").returncode == 0
    assert not (sandbox.state / "api-rtt").exists()


def _options(sandbox) -> ClusterOptions:
    return ClusterOptions(kubeconfig=str(sandbox.kubeconfig), namespace="istio-system")


@pytest.mark.double_only("the round trip is the double's model (set_rtt)")
@pytest.mark.slow  # pays modelled round trips
def test_requests_and_port_forward_messages_pay_the_round_trip(sandbox):
    with Session.open(_options(sandbox)) as session:
        [gateway] = session.proxies("deploy/istio-ingressgateway")
        with session.admin(gateway) as admin:  # warm: the TLS session, kubeconfig, imports
            admin.server_info()

        sandbox.set_rtt(RTT)
        try:
            started = time.monotonic()
            session.api.list_pods("istio-system")
            one_request = time.monotonic() - started

            started = time.monotonic()
            with session.admin(gateway) as admin:
                opened = time.monotonic() - started
                started = time.monotonic()
                admin.server_info()
                first = time.monotonic() - started
                started = time.monotonic()
                admin.server_info()
                second = time.monotonic() - started
        finally:
            sandbox.set_rtt(0)
    assert one_request >= RTT  # a request, on a kept-alive connection
    assert opened >= 2 * RTT  # a new TLS connection + the upgrade request
    assert first >= RTT and second >= RTT  # each admin request over the forward

    # Cleared: the same request no longer waits (generous bound: one RTT, on a loaded box).
    with Session.open(_options(sandbox)) as session:
        session.api.list_pods("istio-system")
        started = time.monotonic()
        session.api.list_pods("istio-system")
        assert time.monotonic() - started < RTT


@pytest.mark.double_only("the round trip is the double's model (set_rtt)")
@pytest.mark.slow  # pays modelled round trips
def test_concurrent_requests_wait_in_parallel(sandbox):
    """The delay is the network's, not a lock: ten requests at once take ~one RTT each, not
    ten in a row (bounded loosely from above: 10 serial RTTs would be 2.5 s)."""
    with Session.open(_options(sandbox)) as session:
        session.api.list_pods("istio-system")
        sandbox.set_rtt(RTT)
        try:
            threads = [threading.Thread(target=session.api.list_pods, args=("istio-system",))
                       for _ in range(10)]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
        finally:
            sandbox.set_rtt(0)
    assert RTT <= elapsed < 10 * RTT


@pytest.mark.slow  # starts two sandboxes
def test_a_new_sandbox_starts_without_a_previous_ones_rtt(tmp_path):
    from sandbox.testing import RunningSandbox
    state = tmp_path / "state"
    state.mkdir()
    write_rtt(state, 0.5)  # left over from an earlier sandbox in the same state dir
    with RunningSandbox(state) as sb:
        assert not (sb.state / "api-rtt").exists()
