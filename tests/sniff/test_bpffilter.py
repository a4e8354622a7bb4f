"""The capture filter checked before anything is created (capture/bpffilter.py): final errors
are the ones tcpdump in the pod would give; names and unknown link types are the pod's."""

from __future__ import annotations

import pytest

from kubectl_mesh.capture import bpffilter
from kubectl_mesh.errors import UsageError


@pytest.mark.parametrize("expression, interface, said", [
    ("tcp port (", "any", "syntax error"),
    ("tcp port (", "eth7", "syntax error"),  # a syntax error on any link type
    ("-w /etc/passwd", "eth0", "syntax error"),
    ("vlan 3", "any", "no VLAN support"),
    ("ether host 1:2:3:4:5:6", "any", "ethernet addresses"),
    ("net 10.0.0.0/33", "lo", "mask length"),
], ids=["syntax", "syntax-other-iface", "flag-like", "vlan-on-any", "ether-on-any", "mask"])
def test_what_tcpdump_in_the_pod_would_refuse_is_refused_here(expression, interface, said):
    with pytest.raises(UsageError) as e:
        bpffilter.check(expression, interface)
    assert said in e.value.message and f"-i {interface}" in e.value.message


@pytest.mark.parametrize("expression, interface", [
    ("", "any"), ("tcp port 8080 and host 10.0.0.1", "any"), ("vlan 3", "eth0"),
    ("host db.shop.svc.cluster.local.invalid", "any"), ("port no-such-service", "eth0"),
    ("vlan 3", "tun0"),
], ids=["empty", "valid", "vlan-on-ethernet", "pod-dns-name", "pod-service-name",
        "unknown-link-type"])
def test_what_only_the_pod_can_judge_passes(expression, interface):
    assert bpffilter.compile_error(expression, interface) is None


def test_without_libpcap_the_pod_judges(monkeypatch):
    monkeypatch.setattr(bpffilter, "_libpcap", lambda: None)
    assert bpffilter.compile_error("tcp port (", "any") is None


def test_a_compile_that_waits_on_this_machines_dns_is_left_to_the_pod(monkeypatch):
    import threading
    release = threading.Event()

    def slow(expression, interface):
        release.wait(10)
        return "syntax error"

    monkeypatch.setattr(bpffilter, "_compile", slow)
    monkeypatch.setattr(bpffilter, "COMPILE_WAIT", 0.1)
    try:
        assert bpffilter.compile_error("host db.cluster.local", "any") is None
    finally:
        release.set()
