"""Live hand-off to Wireshark (a fake `wireshark` on PATH that records what it was given) and
`--summary` through real tshark, end to end through real kubectl and the sandbox."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

import pytest

from kubectl_mesh.capture.pcap import read_file
from tests.sniff.conftest import GATEWAY_HOST, Traffic, tcpdumps_for, tshark, wait_gone

# In the slow matrix (`make test-fast` leaves it out): one capture per viewer hand-off, a sandbox
# of its own (sniff runs end to end in test_sniff_e2e.py).
pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

# Records its argv, copies stdin to a file (all of it, or only FAKE_WIRESHARK_READ bytes, then
# exits like a closed Wireshark window), then writes `done`.
FAKE_WIRESHARK = """#!{python}
import json, os, sys
out = os.environ["FAKE_WIRESHARK_OUT"]
limit = int(os.environ.get("FAKE_WIRESHARK_READ", "0")) or None
with open(os.path.join(out, "argv.json"), "w") as f:
    json.dump(sys.argv[1:], f)
got = 0
with open(os.path.join(out, "stream.pcap"), "wb") as f:
    while limit is None or got < limit:
        data = sys.stdin.buffer.read1(65536)
        if not data:
            break
        f.write(data)
        got += len(data)
open(os.path.join(out, "done"), "w").close()
"""


@pytest.fixture(scope="module")
def gateway(mesh) -> dict:
    return mesh.pod("istio-system", "app=istio-ingressgateway")


@pytest.fixture
def fake_wireshark(tmp_path, mesh):
    """(env for `mesh`, the directory the fake writes to)."""
    bin_dir, out = tmp_path / "bin", tmp_path / "wireshark"
    bin_dir.mkdir()
    out.mkdir()
    exe = bin_dir / "wireshark"
    exe.write_text(FAKE_WIRESHARK.format(python=sys.executable))
    exe.chmod(0o755)
    env = mesh.env(FAKE_WIRESHARK_OUT=str(out))
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env, out


def _traffic(gateway: dict) -> Traffic:
    return Traffic(f"http://{gateway['status']['podIP']}:8080/items", GATEWAY_HOST)


def _wait_for(path: pathlib.Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path.name} never appeared"


def test_wireshark_gets_a_titled_live_pcap_stream_on_stdin(mesh, gateway, fake_wireshark):
    env, out = fake_wireshark
    pod = f"{gateway['metadata']['name']}.istio-system"
    with _traffic(gateway):
        result = mesh(pod, "--count", "10", "-f", "tcp port 8080", env=env)
    assert result.returncode == 0, result.stderr
    assert b"started Wireshark (pid " in result.stderr
    _wait_for(out / "done")  # we closed its stdin at the end: it saw EOF
    argv = json.loads((out / "argv.json").read_text())
    assert argv == ["-k", "-i", "-", "-o", "gui.window_title:kubectl mesh sniff "
                                           f"istio-system/{gateway['metadata']['name']}"]
    _, records = read_file(str(out / "stream.pcap"))
    assert len(records) == 10
    frames = tshark("-r", str(out / "stream.pcap"), "-T", "fields", "-e", "frame.number")
    assert frames.split() == [str(i) for i in range(1, 11)]  # tshark reads all of it


def test_closing_wireshark_stops_the_capture_and_cleans_up(mesh, gateway, fake_wireshark):
    env, _ = fake_wireshark
    env["FAKE_WIRESHARK_READ"] = "3000"  # the window closes after a few packets
    ip = gateway["status"]["podIP"]
    started = time.monotonic()
    with _traffic(gateway):
        result = mesh(f"{gateway['metadata']['name']}.istio-system", env=env, timeout=60)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "(the viewer closed its input)" in err
    assert time.monotonic() - started < 30  # stopped by the closed viewer, not a timeout
    assert wait_gone(lambda: tcpdumps_for(ip), 5), "tcpdump left running"
    statuses = mesh.pod("istio-system", "app=istio-ingressgateway")["status"].get(
        "ephemeralContainerStatuses") or []
    assert statuses and all("terminated" in s["state"] for s in statuses)


def test_summary_prints_tsharks_decode_of_the_packets_written(mesh, gateway, tmp_path):
    out = tmp_path / "s.pcap"
    with _traffic(gateway):
        result = mesh(f"{gateway['metadata']['name']}.istio-system", "--summary", "-o", str(out),
                      "--count", "12", "-f", "tcp port 8080")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    _, records = read_file(str(out))
    assert len(lines) == len(records) == 12  # one decoded line per packet, same packets
    assert any("GET /items HTTP/1.1" in line for line in lines), lines
    assert all(line.split()[0].isdigit() for line in lines)  # tshark's frame numbers
