"""Capture throughput and loss of `kubectl mesh sniff` (exec stream) under a bulk transfer.

Starts a sandbox (or uses --state DIR of a running one), starts `kubectl mesh sniff` on a
catalog pod (-o FILE, auto mode), GETs /bulk?bytes=N from the pod's app port, stops the
capture with Ctrl-C and compares: packets in the file vs packets a reference host tcpdump
(same filter, stopped with SIGINT so it reports its count) saw. Run:

    .venv/bin/python benchmarks/sniff_throughput.py --bytes 50000000
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubectl_mesh.capture.pcap import read_file  # noqa: E402
from sandbox.testing import RunningSandbox, kubectl_binary  # noqa: E402


def wait_for_tcpdump(ip: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"tcpdump") and any(ip.encode() in a for a in argv) \
                    and b"-w" in argv and b"-" in argv:
                return
        time.sleep(0.1)
    raise SystemExit("tcpdump did not start")


def run(sb: RunningSandbox, nbytes: int, workdir: pathlib.Path) -> dict:
    pod = sorted(sb.pods("istioinaction", "app=catalog,version=v2"),
                 key=lambda p: p["metadata"]["name"])[0]
    ip, name = pod["status"]["podIP"], pod["metadata"]["name"]
    out, ref = workdir / "bulk.pcap", workdir / "ref.pcap"
    env = sb.env()
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    flt = "tcp port 3000"
    sniff = subprocess.Popen([kubectl_binary(), "mesh", "sniff", f"{name}.istioinaction",
                              "-o", str(out), "-f", flt], env=env, stderr=subprocess.PIPE)
    wait_for_tcpdump(ip)
    reference = subprocess.Popen(["tcpdump", "-i", "lo", "-w", str(ref), "-B", "65536",
                                  f"host {ip} and ({flt})"], stderr=subprocess.PIPE)
    time.sleep(1.0)
    started = time.monotonic()
    with urllib.request.urlopen(f"http://{ip}:3000/bulk?bytes={nbytes}", timeout=120) as r:
        got = len(r.read())
    transfer = time.monotonic() - started
    # Let the capture drain: wait until the file stops growing.
    last, stable = -1, 0
    while stable < 5:
        size = out.stat().st_size if out.exists() else 0
        stable = stable + 1 if size == last else 0
        last = size
        time.sleep(0.2)
    drained = time.monotonic() - started
    reference.send_signal(signal.SIGINT)
    ref_err = reference.communicate(timeout=30)[1].decode()
    sniff.send_signal(signal.SIGINT)
    sniff_err = sniff.communicate(timeout=60)[1].decode()
    ref_count = int(re.search(r"(\d+) packets captured", ref_err).group(1))
    ref_dropped = int(re.search(r"(\d+) packets dropped by kernel", ref_err).group(1))
    _, records = read_file(str(out))
    captured_bytes = out.stat().st_size
    return {"transfer_bytes": got, "transfer_s": round(transfer, 2),
            "capture_file_MB": round(captured_bytes / 1e6, 1),
            "capture_MBps": round(captured_bytes / 1e6 / drained, 1),
            "packets_in_file": len(records), "reference_tcpdump_packets": ref_count,
            "reference_dropped_by_kernel": ref_dropped,
            "loss": ref_count - len(records), "sniff_exit": sniff.returncode,
            "sniff_summary": sniff_err.strip().splitlines()[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=50_000_000)
    parser.add_argument("--state", help="a running sandbox's state dir (default: start one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sniff-bench-") as tmp:
        if args.state:
            result = run(RunningSandbox(pathlib.Path(args.state)), args.bytes, pathlib.Path(tmp))
        else:
            with RunningSandbox(pathlib.Path(tmp) / "state") as sb:
                result = run(sb, args.bytes, pathlib.Path(tmp))
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
