"""Port-forward and exec transfer, and one-shot command times, of this tree beside another
(e.g. main before a change), in one run against one sandbox, alternating tree by tree.

    .venv/bin/python benchmarks/transport_side_by_side.py --baseline /tmp/before \\
        --rounds 5 --bytes 50e6

Each round runs, for each tree in turn, child processes with PYTHONPATH=tree:
- `channel`: GET /bulk?bytes=N from a catalog pod's app port through `open_channel` (the
  port-forward WebSocket used as the socket), read by `http.client`;
- `relay`: the same through `port_forward()` (the local listener and relay threads);
- `exec`: `head -c N /dev/zero` exec'd in the pod, read by `open_exec`;
- `admin`: 20 `/config_dump` fetches over one `open_admin` (keep-alive), ms per fetch;
(the transfer alone is timed: the port-forward or exec is open and the first bytes asked for)
and the commands `kubectl-mesh-routes` (a port-forward to the gateway's admin) and
`kubectl-mesh-accesslog --tail 20` (the logs API), wall time from exec to exit.
Transfers report MB/s and the client's CPU per 100 MB. Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.testing import kubectl_binary  # noqa: E402

BIN = pathlib.Path(sys.executable).parent
GATEWAY = ["deploy/istio-ingressgateway", "-n", "istio-system"]
# Run with a tree's own code: {"bytes", "wall", "cpu"} as JSON.
PROBE = """
import http.client, json, sys, time, types
from kubectl_mesh.kube.kubeconfig import load_config
kubeconfig, kind, name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
config = load_config(kubeconfig, None, None)
pod = types.SimpleNamespace(name=name, namespace="istioinaction")
got = [0]
def count(data):
    got[0] += len(data)
def bulk(conn):
    conn.request("GET", f"/bulk?bytes={n}")
    resp = conn.getresponse()
    while chunk := resp.read(256 * 1024):
        count(chunk)
def start():
    return time.perf_counter(), time.process_time()
if kind == "channel":
    from kubectl_mesh.kube.portforward import open_channel
    channel = open_channel(config, pod, 3000)
    conn = http.client.HTTPConnection("pod", 3000)
    conn.sock = channel.connect()
    wall, cpu = start()
    bulk(conn)
    conn.close()
    channel.close()
elif kind == "relay":
    from kubectl_mesh.kube.portforward import port_forward
    with port_forward(config, pod, 3000) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.connect()
        wall, cpu = start()
        bulk(conn)
        conn.close()
elif kind == "exec":
    from kubectl_mesh.kube.execstream import open_exec
    stream = open_exec(config, "istioinaction", name, ["head", "-c", str(n), "/dev/zero"],
                       container="catalog")
    wall, cpu = start()
    stream.run(count, lambda data: None)
    stream.close()
elif kind == "admin":
    from kubectl_mesh.admin import open_admin
    gateway = types.SimpleNamespace(name=name, namespace="istio-system")
    with open_admin(config, gateway) as admin:
        admin.server_info()
        wall, cpu = start()
        before = admin.bytes_fetched
        for _ in range(n):
            admin.config_dump()
        count(b"x" * (admin.bytes_fetched - before))
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"bytes": got[0], "wall": wall, "cpu": cpu}))
"""


def pod_name(env: dict, namespace: str, selector: str) -> str:
    out = subprocess.run([kubectl_binary(), "get", "pods", "-n", namespace, "-l", selector,
                          "-o", "jsonpath={.items[0].metadata.name}"], env=env,
                         capture_output=True, text=True, check=True, timeout=30)
    return out.stdout.strip()


def probe(env: dict, tree: pathlib.Path, kind: str, name: str, n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, env["KUBECONFIG"], kind, name, str(n)],
                         env={**env, "PYTHONPATH": str(tree)}, cwd=tree, capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"{kind} probe of {tree} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def command(env: dict, tree: pathlib.Path, argv: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of a command, from exec to exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run([str(BIN / argv[0]), *argv[1:]], env={**env, "PYTHONPATH": str(tree)},
                         cwd=tree, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{argv} with {tree} failed: {out.stderr[-2000:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=pathlib.Path, required=True,
                        help="a checkout of the code to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bytes", type=float, default=50e6)
    parser.add_argument("--fetches", type=int, default=20)
    args = parser.parse_args()
    trees = [("before", args.baseline.resolve()), ("this tree", ROOT)]
    n = int(args.bytes)
    results: dict = {(t, k): [] for t, _ in trees
                     for k in ("channel", "relay", "exec", "admin", "routes", "accesslog")}
    with tempfile.TemporaryDirectory(prefix="transport-bench-") as tmp:
        state = pathlib.Path(tmp) / "state"
        env = dict(os.environ, KUBECONFIG=str(state / "kubeconfig"),
                   KUBECACHEDIR=str(state / "kubectl-cache"))
        env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
        subprocess.run([sys.executable, "-m", "sandbox", "up", "--detach", "--state", str(state),
                        "--timeout", "120"], cwd=ROOT, env=env, check=True, capture_output=True,
                       timeout=180)
        try:
            catalog = pod_name(env, "istioinaction", "app=catalog,version=v2")
            gateway = pod_name(env, "istio-system", "app=istio-ingressgateway")
            for _ in range(args.rounds):
                for tree_name, tree in trees:
                    for kind in ("channel", "relay", "exec"):
                        results[tree_name, kind].append(probe(env, tree, kind, catalog, n))
                    results[tree_name, "admin"].append(
                        probe(env, tree, "admin", gateway, args.fetches))
                    results[tree_name, "routes"].append(
                        command(env, tree, ["kubectl-mesh-routes", *GATEWAY]))
                    results[tree_name, "accesslog"].append(
                        command(env, tree, ["kubectl-mesh-accesslog", *GATEWAY, "--tail", "20"]))
        finally:
            subprocess.run([sys.executable, "-m", "sandbox", "down", "--state", str(state)],
                           cwd=ROOT, env=env, capture_output=True, timeout=60)
    print(f"{args.rounds} rounds, {n / 1e6:.0f} MB per transfer, {args.fetches} admin fetches\n")
    print("| tree | way | MB/s (median) | client CPU per 100 MB (median) |")
    print("|---|---|---:|---:|")
    for kind in ("channel", "relay", "exec"):
        for tree_name, _ in trees:
            runs = results[tree_name, kind]
            mbps = statistics.median(r["bytes"] / 1e6 / r["wall"] for r in runs)
            cpu = statistics.median(r["cpu"] / (r["bytes"] / 1e8) for r in runs)
            print(f"| {tree_name} | {kind} | {mbps:.0f} | {cpu * 1000:.0f} ms |")
    print("\n| tree | admin ms/fetch (median) | `routes` ms wall / CPU (median) | "
          "`accesslog --tail 20` ms wall / CPU (median) |")
    print("|---|---:|---:|---:|")
    for tree_name, _ in trees:
        admin = statistics.median(r["wall"] / args.fetches * 1000
                                  for r in results[tree_name, "admin"])
        cells = []
        for kind in ("routes", "accesslog"):
            runs = results[tree_name, kind]
            cells.append(f"{statistics.median(w for w, _ in runs) * 1000:.0f} / "
                         f"{statistics.median(c for _, c in runs) * 1000:.0f}")
        print(f"| {tree_name} | {admin:.2f} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
