"""`kubectl mesh sync` on a 50-sidecar sandbox: median wall time of `sync` (target <= 1.5 s)
and of `sync --verify` at `--concurrency 10` vs `1`, measured side by side (alternating runs)
in one sandbox (target: >= 5x faster). Prints markdown.

    python benchmarks/sync_scale.py [--sidecars 50] [--runs 5] [--rtt 0 10ms 25ms]

`--rtt` models the round trip to a remote API server (`python -m sandbox rtt`): on loopback
every port-forward is nearly free and the fan-out is CPU-bound on this machine's 2 cores;
concurrency exists to hide round trips, which only a modelled RTT shows here.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from sandbox.generate import scenario  # noqa: E402
from sandbox.testing import RunningSandbox, kubectl_binary  # noqa: E402


def timed(sb: RunningSandbox, *args: str) -> float:
    env = sb.env()
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}:{env.get('PATH', '')}"
    started = time.perf_counter()
    out = subprocess.run([kubectl_binary(), "mesh", "sync", *args], env=env, capture_output=True,
                         text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if out.returncode == 7 and "--verify" in args:  # findings under load: time, and show them
        lines = [l for l in out.stdout.split("\n\n", 1)[-1].splitlines()[1:] if l.strip()]
        print(f"<!-- {' '.join(args)}: exit 7: {' | '.join(lines[:5])} -->", file=sys.stderr)
    elif out.returncode != 0:
        raise SystemExit(f"kubectl mesh sync {' '.join(args)} failed ({out.returncode}): "
                         f"{out.stderr[-2000:]}")
    return elapsed


def main(argv=None) -> int:
    from sandbox.apiserver.latency import parse_rtt

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sidecars", type=int, default=50)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--rtt", nargs="+", default=["0", "10ms", "25ms"],
                   help="API round-trip times to model (`python -m sandbox rtt`), each "
                        "measured in turn in the same sandbox")
    args = p.parse_args(argv)
    rtts = [parse_rtt(r) for r in args.rtt]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        path = pathlib.Path(tmp) / "mesh.yaml"
        path.write_text(yaml.safe_dump_all(scenario(args.sidecars), sort_keys=False))
        with RunningSandbox(pathlib.Path(tmp) / "state", scenarios=[path], timeout=180) as sb:
            timed(sb, "--wait", "--timeout", "300s")  # every proxy connected and SYNCED
            timed(sb)  # warm caches (kubectl discovery, page cache)
            timed(sb, "--verify")  # and istiod's first config_dump of each proxy
            for rtt in rtts:
                sb.set_rtt(rtt)
                plain = [timed(sb) for _ in range(args.runs)]
                fast, slow = [], []
                for _ in range(max(1, args.runs // 2 + 1)):
                    fast.append(timed(sb, "--verify", "--concurrency", "10"))
                    slow.append(timed(sb, "--verify", "--concurrency", "1"))
                rows.append((rtt, plain, fast, slow))
            sb.set_rtt(0)
    proxies = args.sidecars + 1
    print(f"### sync, {args.sidecars} sidecars + 1 gateway ({proxies} proxies, 1 istiod)\n")
    print("| API RTT | command | runs | median | min | max |")
    print("|---|---|---|---|---|---|")
    for rtt, plain, fast, slow in rows:
        for label, xs in (("`kubectl mesh sync`", plain),
                          ("`kubectl mesh sync --verify --concurrency 10`", fast),
                          ("`kubectl mesh sync --verify --concurrency 1`", slow)):
            print(f"| {rtt * 1000:g} ms | {label} | {len(xs)} | {statistics.median(xs):.2f} s | "
                  f"{min(xs):.2f} s | {max(xs):.2f} s |")
    print()
    for rtt, plain, fast, slow in rows:
        m_plain, m_fast, m_slow = (statistics.median(x) for x in (plain, fast, slow))
        print(f"- RTT {rtt * 1000:g} ms: `sync` median {m_plain:.2f} s (target <= 1.5 s: "
              f"{'met' if m_plain <= 1.5 else 'NOT met'}); `--verify` concurrency 10 is "
              f"{m_slow / m_fast:.1f}x faster than 1 (target >= 5x: "
              f"{'met' if m_slow / m_fast >= 5 else 'NOT met'}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
