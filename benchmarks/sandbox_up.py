"""Sandbox start-up: `python -m sandbox up --detach` until the ready file (every pod Ready),
and the memory and CPU of everything the sandbox started at that moment, for the default
scenario and a generated N-sidecar mesh, side by side (alternating runs). Prints markdown.

    python benchmarks/sandbox_up.py [--sidecars 50] [--runs 3]

Memory is the sum of VmRSS over the supervisor and every container process listed in
status.json (Envoys, istiod, apps); CPU is their user+system seconds up to Ready. The
machine's 1-minute load average is printed too: other work on it skews the wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from sandbox.cluster import DEFAULT_SCENARIO  # noqa: E402
from sandbox.generate import scenario  # noqa: E402
from sandbox.testing import pid_alive  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    seconds: float
    rss_mb: float
    cpu: dict[str, float] = field(default_factory=dict)  # seconds by process role
    processes: int = 0


def vm_rss_kb(pid: int) -> int:
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0  # gone, or a kernel thread


def cpu_seconds(pid: int) -> float:
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def role(pod: dict, container: dict) -> str:
    if container["name"] == "istio-proxy":
        return "envoy"
    if pod["namespace"] == "istio-system" and pod["name"].startswith("istiod-"):
        return "istiod"
    return "app"


def stable_status(state: pathlib.Path, timeout: float = 5.0) -> list[dict]:
    """status.json once it lists every container with a pid and stops changing (the
    supervisor rewrites it every 0.3 s, so it may trail the ready file a little)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            pods = json.loads((state / "status.json").read_text())
        except (OSError, ValueError):
            pods = []
        complete = pods and all(c.get("pid") for p in pods for c in p["containers"])
        if complete and pods == last:
            return pods
        last = pods
        time.sleep(0.4)
    raise SystemExit(f"status.json of {state} did not settle")


def one_run(scenario_file: pathlib.Path, state: pathlib.Path, timeout: float) -> Run:
    cmd = [sys.executable, "-m", "sandbox", "up", "--detach", "--state", str(state),
           "--scenario", str(scenario_file), "--timeout", str(timeout), "--owner", str(os.getpid())]
    started = time.perf_counter()
    up = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ready = state / "ready"
        while not ready.exists():
            if up.poll() is not None and not ready.exists():
                raise SystemExit(f"sandbox up failed ({up.returncode}): "
                                 f"{up.stderr.read().decode()[-2000:]}")
            if time.perf_counter() - started > timeout + 30:
                raise SystemExit(f"no ready file after {timeout + 30:.0f}s")
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        up.wait(30)
        supervisor = int((state / "sandbox.pid").read_text())
        pods = stable_status(state)
        pids = {supervisor: "supervisor"}
        pids.update({c["pid"]: role(p, c) for p in pods for c in p["containers"]})
        cpu: dict[str, float] = {}
        for pid, name in pids.items():
            cpu[name] = cpu.get(name, 0.0) + cpu_seconds(pid)
        rss = sum(vm_rss_kb(pid) for pid in pids) / 1024
        return Run(seconds, rss, cpu, len(pids))
    finally:
        if up.poll() is None:
            up.kill()
        up.wait()
        if up.stderr:
            up.stderr.close()
        down(state)


def down(state: pathlib.Path) -> None:
    """`sandbox down`, then make sure nothing it started is still alive."""
    pids = []
    try:
        pids = [int((state / "sandbox.pid").read_text())]
        pids += [c["pid"] for p in json.loads((state / "status.json").read_text())
                 for c in p["containers"] if c.get("pid")]
    except (OSError, ValueError):
        pass
    subprocess.run([sys.executable, "-m", "sandbox", "down", "--state", str(state)], cwd=ROOT,
                   capture_output=True, timeout=60)
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if pid_alive(p)]
    if left:
        raise SystemExit(f"processes left behind by {state}: {left}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sidecars", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--timeout", type=float, default=120.0, help="per start-up, seconds")
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sandbox-up-bench-") as tmp:
        generated = pathlib.Path(tmp) / f"mesh{args.sidecars}.yaml"
        generated.write_text(yaml.safe_dump_all(scenario(args.sidecars), sort_keys=False))
        cases = {"default scenario": DEFAULT_SCENARIO,
                 f"generated, {args.sidecars} sidecars": generated}
        runs: dict[str, list[Run]] = {name: [] for name in cases}
        for i in range(args.runs):  # alternate, so drifting machine load hits both alike
            for n, (name, path) in enumerate(cases.items()):
                runs[name].append(one_run(path, pathlib.Path(tmp) / f"state-{n}-{i}",
                                          args.timeout))
    load_after = os.getloadavg()[0]
    print(f"### sandbox up --detach → ready ({args.runs} runs each, alternating)\n")
    print("| scenario | processes | median | runs (s) | RSS at Ready (median) "
          "| CPU s to Ready: supervisor / istiod / Envoys / apps |")
    print("|---|---|---|---|---|---|")
    for name, rs in runs.items():
        med = statistics.median(r.seconds for r in rs)
        rss = statistics.median(r.rss_mb for r in rs)
        cpu = " / ".join(f"{statistics.median(r.cpu.get(k, 0.0) for r in rs):.2f}"
                         for k in ("supervisor", "istiod", "envoy", "app"))
        print(f"| {name} | {rs[0].processes} | {med:.2f} s | "
              f"{', '.join(f'{r.seconds:.2f}' for r in rs)} | {rss:.0f} MB | {cpu} |")
    print(f"\nload average (1 min) before/after: {load_before:.1f} / {load_after:.1f} "
          f"on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
