"""The netns pod network's service proxy rules and DNS answers, without a network: what
`ServiceProxy._rules` writes for a snapshot of Services (pkg/proxy/iptables/proxier.go's
layout) and what `dns.answer` replies to a query message (RFC 1035 §4.1).

What a broken implementation gets wrong: probabilities that do not spread evenly (the
real proxier's 1/(n-i), the last rule unconditional), a missing hairpin masquerade, a
Service without endpoints that is DNATed nowhere instead of REJECTed, the `kubernetes`
Service taken from the pod network's own rule, NXDOMAIN for a name that exists (AAAA), an
answer for a name outside the cluster, and a crash on a malformed message."""

from __future__ import annotations

import socket
import struct

from sandbox.real.kubelet import dns
from sandbox.real.kubelet.serviceproxy import ServiceProxy
from sandbox.real.kubelet.services import ServicePort, Snapshot


class FakeServices:
    def __init__(self, ports=(), services=None):
        self._snapshot = Snapshot(tuple(ports), services or {})

    def add_listener(self, listener) -> None:
        pass

    def snapshot(self) -> Snapshot:
        return self._snapshot


def rules_of(*ports: ServicePort) -> dict:
    proxy = ServiceProxy(FakeServices(), "kmesh9", "10.244.9.0/24")
    return proxy._rules(ports)


def test_endpoints_are_chosen_evenly_and_a_pod_reaching_itself_is_masqueraded():
    eps = (("10.244.9.2", 8080), ("10.244.9.3", 8080), ("10.244.9.4", 8080))
    rules = rules_of(ServicePort("default", "web", "http", "TCP", "10.96.5.5", 80, eps))
    nat = [" ".join(r) for r in rules["nat"]]
    svc_rules = [r for r in nat if r.startswith("-A kmesh9-SVC-") and "-> " in r]
    assert len(svc_rules) == 3
    assert "--probability 0.3333333333" in svc_rules[0]
    assert "--probability 0.5000000000" in svc_rules[1]
    assert "statistic" not in svc_rules[2]
    assert any("! -s 10.244.9.0/24 -j kmesh9-MARK-MASQ" in r for r in nat)  # from the node
    for ip, port in eps:
        assert any(f"-s {ip}/32 -j kmesh9-MARK-MASQ" in r for r in nat)  # hairpin
        assert any(r.endswith(f"-j DNAT --to-destination {ip}:{port}") for r in nat)
    assert all(len(c) <= 28 for c in rules["chains"]["nat"])
    assert not any("REJECT" in " ".join(r) for r in rules["filter"])


def test_a_port_without_endpoints_is_rejected_and_the_api_service_left_alone():
    rules = rules_of(ServicePort("default", "web", "http", "TCP", "10.96.5.5", 80, ()),
                     ServicePort("default", "kubernetes", "https", "TCP", "10.96.0.1", 443,
                                 (("10.244.9.9", 6443),)),
                     ServicePort("default", "direct", "", "TCP", "None", 80,
                                 (("10.244.9.2", 80),)))
    filt = [" ".join(r) for r in rules["filter"]]
    assert [r for r in filt if "REJECT" in r] == [
        '-A kmesh9-SERVICES -m comment --comment default/web:http has no endpoints -m tcp '
        '-p tcp -d 10.96.5.5/32 --dport 80 -j REJECT']
    nat = " ".join(" ".join(r) for r in rules["nat"])
    assert "10.96.0.1" not in nat and "DNAT" not in nat  # only the pod network's own rule


def message(name: str, qtype: int = 1) -> bytes:
    question = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"
    return struct.pack("!6H", 7, 0x0100, 1, 0, 0, 0) + question + struct.pack("!2H", qtype, 1)


def parsed(reply: bytes) -> tuple[int, list[str]]:
    _, flags, qd, an = struct.unpack("!4H", reply[:8])
    assert flags & 0x8000 and flags & 0x0400 and flags & 0x0100  # QR, AA, RD echoed
    offset = 12
    for _ in range(qd):
        while reply[offset]:
            offset += 1 + reply[offset]
        offset += 5
    addresses = []
    for _ in range(an):
        assert reply[offset:offset + 2] == b"\xc0\x0c"
        rtype, _, ttl, size = struct.unpack("!2HIH", reply[offset + 2:offset + 12])
        assert (rtype, ttl, size) == (1, 5, 4)
        addresses.append(socket.inet_ntoa(reply[offset + 12:offset + 16]))
        offset += 16
    return flags & 0xF, addresses


SERVICES = FakeServices(services={("istio-system", "istiod"): ("10.96.7.7", ("10.244.9.5",)),
                                  ("default", "db"): ("None", ("10.244.9.2", "10.244.9.3"))})


def test_dns_answers_cluster_ips_and_headless_endpoints():
    assert parsed(dns.answer(message("istiod.istio-system.svc.cluster.local"), SERVICES)) == \
        (0, ["10.96.7.7"])
    assert parsed(dns.answer(message("Istiod.Istio-System.svc.cluster.local"), SERVICES)) == \
        (0, ["10.96.7.7"])
    assert parsed(dns.answer(message("db.default.svc.cluster.local"), SERVICES)) == \
        (0, ["10.244.9.2", "10.244.9.3"])
    assert parsed(dns.answer(message("istiod.istio-system.svc.cluster.local", 28), SERVICES)) \
        == (0, [])  # the name exists: NODATA, not NXDOMAIN


def test_dns_refuses_other_names_and_survives_bad_messages():
    for name in ("istiod.default.svc.cluster.local", "istiod.istio-system.svc",
                 "istiod.istio-system.svc.istio-system.svc.cluster.local", "example.com"):
        assert parsed(dns.answer(message(name), SERVICES)) == (3, []), name
    assert dns.answer(b"\0\1", SERVICES) is None
    truncated = message("istiod.istio-system.svc.cluster.local")[:20]
    assert struct.unpack("!2H", dns.answer(truncated, SERVICES)[:4])[1] & 0xF == 1  # FORMERR
    response = bytearray(message("x")); response[2] |= 0x80
    assert dns.answer(bytes(response), SERVICES) is None  # a response is not answered


def test_resolv_conf_has_the_kubelets_cluster_first_search_path():
    assert dns.resolv_conf_text("shop", "10.244.9.1") == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.244.9.1\noptions ndots:5\n")
