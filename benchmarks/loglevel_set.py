"""`kubectl mesh loglevel --level` on 20 pods: wall time at the default concurrency vs
`--concurrency 1`, measured side by side (alternating runs) in one sandbox.

    .venv/bin/python benchmarks/loglevel_set.py [--replicas 20] [--rounds 5]

Starts a sandbox, applies a Deployment with N injected replicas (real Envoys), waits until
every Envoy answers, then runs the real plugin through real kubectl, alternating the two
settings so both see the same machine load. Each run moves every logger of every pod (the
level alternates debug/info), and every Envoy is checked afterwards. Prints markdown lines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from kubectl_mesh.admin import parse_loggers  # noqa: E402
from kubectl_mesh.cli.common import DEFAULT_CONCURRENCY  # noqa: E402
from sandbox.testing import RunningSandbox, kubectl_binary  # noqa: E402

NAMESPACE = "istioinaction"


def deployment(replicas: int) -> dict:
    labels = {"app": "bench"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "bench", "namespace": NAMESPACE, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "app", "image": "bench:latest",
                          "ports": [{"containerPort": 3000, "name": "http"}]}]}}}}


def ready_ips(sb: RunningSandbox, replicas: int) -> list[str]:
    pods = sb.pods(NAMESPACE, "app=bench")
    ready = [p["status"]["podIP"] for p in pods
             if any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions", []))]
    return ready if len(ready) == replicas else []


def levels(ip: str) -> dict[str, str]:
    return parse_loggers(requests.post(f"http://{ip}:15000/logging", timeout=5).text)


def answers(ip: str) -> bool:
    try:
        return bool(levels(ip))
    except requests.RequestException:
        return False


def main() -> int:
    from sandbox.apiserver.latency import parse_rtt

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rtt", nargs="+", default=["0"],
                    help="API round-trip times to model (`python -m sandbox rtt`), each "
                         "measured in turn in the same sandbox, e.g. --rtt 0 10ms 25ms")
    args = ap.parse_args()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp, RunningSandbox(Path(tmp) / "state") as sb:
        sb.kubectl("apply", "-f", "-", input=json.dumps(deployment(args.replicas)))
        ips = sb.wait_for(lambda: ready_ips(sb, args.replicas), timeout=180,
                          what=f"{args.replicas} ready bench pods")
        for ip in ips:
            sb.wait_for(lambda: answers(ip), timeout=60, what=f"Envoy on {ip}")
        env = sb.env()
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        print(f"pods: {args.replicas}, rounds: {args.rounds} (alternating), cpus: {os.cpu_count()}")
        run = 0
        for rtt in (parse_rtt(r) for r in args.rtt):
            sb.set_rtt(rtt)
            settings = {f"default ({DEFAULT_CONCURRENCY})": [], "--concurrency 1": []}
            for _ in range(args.rounds):
                for name, times in settings.items():
                    level = ("debug", "info")[run % 2]
                    run += 1
                    argv = [kubectl_binary(), "mesh", "loglevel", "deploy/bench", "-n",
                            NAMESPACE, "--level", level] + (
                        ["--concurrency", "1"] if "1" in name.split() else [])
                    started = time.perf_counter()
                    out = subprocess.run(argv, capture_output=True, text=True, env=env,
                                         timeout=300)
                    times.append(time.perf_counter() - started)
                    if out.returncode != 0:
                        raise SystemExit(f"{' '.join(argv)} failed: {out.stderr}")
                    changed = out.stderr.count("all 73 loggers") or out.stderr.count("→")
                    wrong = [ip for ip in ips if set(levels(ip).values()) != {level}]
                    if wrong or changed != args.replicas:
                        raise SystemExit(f"run {run}: {changed} pods reported, wrong on {wrong}")
            medians = {name: statistics.median(t) for name, t in settings.items()}
            fast, slow = medians.values()
            print(f"API round trip {rtt * 1000:g} ms:")
            for name, times in settings.items():
                print(f"- {name}: median {medians[name]:.2f} s, best {min(times):.2f} s "
                      f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
            best_fast, best_slow = (min(t) for t in settings.values())
            print(f"- speed-up (--concurrency 1 / default): median {slow / fast:.1f}x, "
                  f"best {best_slow / best_fast:.1f}x")
        sb.set_rtt(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
