"""Pure pieces: the pcap reader, the pcapng writer (checked by tshark), tcpdump argv/stats,
the sandbox shims' rules, size parsing."""

from __future__ import annotations

import argparse
import io
import struct
import subprocess

import pytest

from kubectl_mesh.capture.backends import capture_blocker
from kubectl_mesh.capture.pcap import PcapFormatError, PcapStreamReader
from kubectl_mesh.capture.pcapng import PcapngWriter
from kubectl_mesh.capture.tcpdump import TcpdumpStats, buffer_per_pod, tcpdump_argv
from kubectl_mesh.capture.viewers import find_wireshark
from kubectl_mesh.cli.sniff import parse_size
from sandbox.tools import check_command, container_env, image_tools, may_capture, container_facts
from sandbox.tools.tcpdump import translate

ETH_IP_UDP = bytes.fromhex("000000000000000000000000080045000020000100004011"
                           "7cca7f0000017f000001d431005000000000") + b"ping"


def pcap_stream(n: int, nanosecond: bool = False, endian: str = "<") -> bytes:
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, 1)
    for i in range(n):
        out += struct.pack(endian + "IIII", 1700000000 + i, 500 + i, len(ETH_IP_UDP),
                           len(ETH_IP_UDP)) + ETH_IP_UDP
    return out


def test_reader_returns_only_whole_records_whatever_the_chunking():
    data = pcap_stream(5)
    reader = PcapStreamReader()
    records = []
    for i in range(0, len(data) - 7, 7):  # odd chunk size; last 7 bytes never arrive
        records += reader.feed(data[i:i + 7])
    assert reader.header.linktype == 1 and reader.header.snaplen == 262144
    assert len(records) == 4  # the 5th is cut: held back, not emitted half
    assert reader.pending > 0
    assert [r.seconds for r in records] == [1700000000 + i for i in range(4)]
    assert records[0].data == ETH_IP_UDP


@pytest.mark.parametrize("endian,ns", [(">", False), ("<", True)], ids=["big-endian", "nanosecond"])
def test_header_variants(endian, ns):
    reader = PcapStreamReader()
    records = reader.feed(pcap_stream(2, ns, endian))
    assert reader.header.nanosecond is ns and len(records) == 2
    assert records[1].fraction == 501


def test_not_pcap_is_an_error():
    with pytest.raises(PcapFormatError):
        PcapStreamReader().feed(b"HTTP/1.1 500 oops\r\n\r\nxxxxxxxxxxxx")


def test_pcapng_has_one_named_interface_per_pod(tmp_path):
    header = PcapStreamReader()
    header.feed(pcap_stream(0))
    buf = io.BytesIO()
    writer = PcapngWriter(buf)
    a, b = PcapStreamReader(), PcapStreamReader()
    recs_a, recs_b = a.feed(pcap_stream(3)), b.feed(pcap_stream(2, nanosecond=True))
    writer.add_interface("a", a.header, "catalog-v2-x/istioinaction")
    writer.add_interface("b", b.header, "catalog-v2-y/istioinaction")
    for r in recs_a:
        writer.write("a", r)
    for r in recs_b:
        writer.write("b", r)
    path = tmp_path / "m.pcapng"
    path.write_bytes(buf.getvalue())
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.interface_name",
                          "-e", "frame.time_epoch"], capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [r[0] for r in rows] == ["catalog-v2-x/istioinaction"] * 3 + \
        ["catalog-v2-y/istioinaction"] * 2
    assert rows[0][1].startswith("1700000000.000500")  # microsecond interface
    assert rows[4][1].startswith("1700000001.000000501")  # nanosecond interface kept exact


def test_tcpdump_argv_keeps_the_filter_one_argument_after_end_of_options():
    argv = tcpdump_argv("lo", "-w /tmp/x; touch /tmp/pwned", 10)
    assert argv == ["tcpdump", "-U", "-w", "-", "-p", "-B", "262144", "-i", "lo", "-c", "10",
                    "--", "-w /tmp/x; touch /tmp/pwned"]
    assert "--" not in tcpdump_argv("eth0")
    assert tcpdump_argv("eth0", buffer_bytes=2**20, snaplen=128)[5:9] == ["-B", "1024", "-s",
                                                                          "128"]


@pytest.mark.parametrize("pods, mib", [(1, 256), (4, 64), (8, 32), (50, 32)],
                         ids=["one", "four", "eight", "fifty"])
def test_default_buffer_is_a_budget_split_among_pods_with_a_floor(pods, mib):
    assert buffer_per_pod(pods) == mib * 2**20


def test_tcpdump_stats_from_stderr():
    stats = TcpdumpStats.parse(b"tcpdump: listening on lo\n12 packets captured\n"
                               b"30 packets received by filter\n1 packet dropped by kernel\n")
    assert (stats.captured, stats.received, stats.dropped) == (12, 30, 1)
    assert TcpdumpStats.parse(b"").captured is None


def test_shim_translates_to_host_loopback_with_pod_ip_and_verbatim_filter():
    argv, iface = translate(["-U", "-w", "-", "-i", "lo", "-c", "3", "--", "port 80; id"],
                            "127.5.0.9")
    assert iface == "lo"
    assert argv == ["/usr/bin/tcpdump", "-i", "lo", "-U", "-w", "-", "-c", "3",
                    "host 127.5.0.9 and (port 80; id)"]


@pytest.mark.parametrize("image,container,annotations,expected", [
    ("istioinaction/catalog:latest", "catalog", {}, []),
    ("istioinaction/catalog:latest", "catalog",
     {"sandbox.kubectl-mesh.io/tools": "catalog=tcpdump"}, ["tcpdump"]),
    ("docker.io/istio/proxyv2:1.28.0", "istio-proxy",
     {"sandbox.kubectl-mesh.io/tools": "tcpdump"}, ["tcpdump"]),
    ("docker.io/istio/proxyv2:1.28.0-distroless", "istio-proxy", {}, []),
    ("docker.io/nicolaka/netshoot:v0.13", "dbg", {}, ["nsenter", "tcpdump"]),
], ids=["app", "annotated", "proxyv2", "distroless", "netshoot"])
def test_which_images_ship_tcpdump(image, container, annotations, expected):
    assert image_tools(image, container, annotations) == expected


def test_proxy_security_context_blocks_capture_and_missing_tool_is_not_found():
    pod = {"metadata": {"name": "p", "namespace": "n"}, "spec": {}}
    proxy = {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.28.0",
             "securityContext": {"runAsUser": 1337, "capabilities": {"drop": ["ALL"]}}}
    assert not may_capture(container_facts(pod, proxy, ephemeral=False))
    assert capture_blocker(proxy, {}) == "runs as uid 1337 (not root)"
    eph = {"name": "e", "image": "docker.io/nicolaka/netshoot:v0.13",
           "securityContext": {"capabilities": {"add": ["NET_RAW", "NET_ADMIN"]}}}
    assert may_capture(container_facts(pod, eph, ephemeral=True))
    app = {"name": "catalog", "image": "istioinaction/catalog:latest"}
    env = container_env({"PATH": "/usr/bin"}, pod, app)
    with pytest.raises(FileNotFoundError):
        check_command(["tcpdump", "-i", "lo"], env)
    check_command(["cat"], env)  # not a shimmed tool: found on PATH as usual


def test_parse_size():
    assert parse_size("10MB") == 10_000_000 and parse_size("1Ki") == 1024
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("ten")


def test_find_wireshark_on_path_else_usual_location(tmp_path):
    exe = tmp_path / "wireshark"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert find_wireshark({"PATH": str(tmp_path)}, "linux") == str(exe)
    assert find_wireshark({"PATH": "/nonexistent"}, "linux") is None
