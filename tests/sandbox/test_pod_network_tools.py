"""The tcpdump shim in a pod that has a network namespace of its own (the real backend's
`--pod-network netns`): the pod's interfaces are real there, so tcpdump captures the one asked
for with the user's filter as it is; on the host's loopback the shim scopes to the pod IP."""

from __future__ import annotations

from sandbox.runtime import preexec
from sandbox.tools.tcpdump import HOST_TCPDUMP, Invocation


def test_in_the_pods_namespace_the_asked_interface_is_captured_unscoped():
    invocation = Invocation.parse(["-i", "eth0", "-U", "-w", "-", "port", "3000"])
    assert invocation.host_argv("10.244.3.7", "port 3000", own_netns=True) == [
        HOST_TCPDUMP, "-i", "eth0", "-U", "-w", "-", "port 3000"]
    assert Invocation.parse(["-i", "any"]).host_argv("10.244.3.7", "", own_netns=True) == [
        HOST_TCPDUMP, "-i", "any"]


def test_on_the_hosts_loopback_the_pods_address_scopes_the_capture():
    invocation = Invocation.parse(["-i", "eth0", "port", "3000"])
    assert invocation.host_argv("127.0.91.7", "port 3000") == [
        HOST_TCPDUMP, "-i", "lo", "host 127.0.91.7 and (port 3000)"]


def test_preexec_runs_each_step_in_order_and_is_none_without_steps():
    ran: list[str] = []
    preexec(lambda: ran.append("cgroup"), None, lambda: ran.append("netns"))()
    assert ran == ["cgroup", "netns"]
    assert preexec(None, None) is None
