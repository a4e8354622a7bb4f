"""The real components: `scripts/real_components.sh` when its cache entry is complete (what
every `make test` after the first pays), their binary sizes, and the real control plane's
start-up (etcd, kube-apiserver, kube-controller-manager, kube-scheduler until the default
service account exists and the scheduler is healthy) beside the API double's default-scenario
start. Prints markdown.

    python benchmarks/real_controlplane.py [--runs 3]

The first, cold build is timed by hand (BENCHMARKS.md says how): it takes minutes and depends
on Go's build cache, which this script must not empty.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.real.controlplane import ControlPlane, locate_binaries  # noqa: E402
from sandbox.testing import RunningSandbox  # noqa: E402


def timed(fn) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    script = ROOT / "scripts" / "real_components.sh"
    cached = [timed(lambda: subprocess.run(["bash", str(script)], check=True,
                                           capture_output=True)) for _ in range(args.runs)]
    binaries = locate_binaries()
    real, double = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):  # alternating, so load on the machine hits both alike
            cp = ControlPlane(pathlib.Path(tmp) / f"real{i}", binaries=binaries)
            try:
                real.append(timed(cp.start))
            finally:
                cp.stop()
            sb = RunningSandbox(pathlib.Path(tmp) / f"double{i}")
            try:
                double.append(timed(sb.up))
            finally:
                sb.down()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}\n")
    print("| what | median | runs |\n|---|---|---|")
    print(f"| `scripts/real_components.sh`, cache complete | {statistics.median(cached) * 1000:.0f} ms |"
          f" {', '.join(f'{x * 1000:.0f}' for x in cached)} ms |")
    print(f"| real control plane up (4 components) | {statistics.median(real):.1f} s |"
          f" {', '.join(f'{x:.1f}' for x in real)} s |")
    print(f"| API double, default scenario Ready (pods and Envoys included) | "
          f"{statistics.median(double):.1f} s | {', '.join(f'{x:.1f}' for x in double)} s |")
    print("\n| binary | size |\n|---|---|")
    for b in sorted(binaries.iterdir()):
        print(f"| {b.name} | {b.stat().st_size / 1e6:.0f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
