"""Envoy admin fetches through ONE of our port-forwards vs the same fetches made directly.

    .venv/bin/python benchmarks/portforward_fetch.py [--sequential 100] [--concurrent 20]
        [--path /config_dump] [--kubeconfig FILE --pod NS/NAME --pod-ip IP]

Without `--kubeconfig` a sandbox (default scenario) is started in a temporary directory and
stopped at the end; the target is its ingress gateway. The port-forward is
`kubectl_mesh.kube.portforward.port_forward` (through the sandbox API double's WebSocket
port-forward); the direct URL is `http://<podIP>:15000<path>` (pods are local processes, so
the host reaches them). The same client (`requests`) fetches both ways, and the two are
interleaved fetch by fetch, so the ratio compares like with like under the same noise.

This process necessarily imports what it measures (the port-forward runs here); start-up is
not part of any number below. Prints markdown.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from kubectl_mesh.admin import EnvoyAdmin  # noqa: E402
from kubectl_mesh.kube.kubeconfig import load_config  # noqa: E402
from kubectl_mesh.admin import open_admin  # noqa: E402
from kubectl_mesh.kube.portforward import port_forward  # noqa: E402


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def relay_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("kubectl-mesh-pf")]


def fetch(session: requests.Session, url: str) -> tuple[float, int]:
    """(seconds, body bytes) of one GET; the body is read in full."""
    started = time.perf_counter()
    resp = session.get(url, timeout=60)
    body = resp.content
    elapsed = time.perf_counter() - started
    if resp.status_code != 200:
        raise SystemExit(f"GET {url} answered {resp.status_code}")
    return elapsed, len(body)


def sequential(base_pf: str, base_direct: str, path: str, n: int, keepalive: bool):
    """n interleaved fetches each way; per-fetch seconds for each."""
    pf, direct = [], []
    with requests.Session() as s_pf, requests.Session() as s_direct:
        for _ in range(n):
            if not keepalive:  # a new TCP connection (so a new WebSocket) per fetch
                s_pf.close(), s_direct.close()
            pf.append(fetch(s_pf, base_pf + path)[0])
            direct.append(fetch(s_direct, base_direct + path)[0])
    return pf, direct


def concurrent_burst(base: str, path: str, n: int) -> tuple[float, list[float]]:
    """n fetches at once, each on its own connection: (wall seconds, per-fetch seconds)."""
    def one(_):
        with requests.Session() as s:
            return fetch(s, base + path)[0]

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        times = list(pool.map(one, range(n)))
    return time.perf_counter() - started, times


def admin_parsed(config, pod, pod_ip: str, n: int):
    """`EnvoyAdmin.config_dump()` (fetch + json parse), via `open_admin` vs a direct client."""
    pf, direct = [], []
    with open_admin(config, pod) as via_pf, EnvoyAdmin(f"http://{pod_ip}:15000",
                                                      pod_ref="direct") as via_ip:
        for _ in range(n):
            for admin, out in ((via_pf, pf), (via_ip, direct)):
                started = time.perf_counter()
                admin.config_dump()
                out.append(time.perf_counter() - started)
    return pf, direct


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def row(label: str, pf: list[float], direct: list[float]) -> str:
    mp, md = statistics.median(pf), statistics.median(direct)
    return (f"| {label} | {ms(sum(pf))} | {ms(mp)} | {ms(sum(direct))} | {ms(md)} | "
            f"{mp / md:.2f}× | {ms(mp - md)} |")


def run(config, pod, pod_ip: str, args, command: str) -> int:
    base_direct = f"http://{pod_ip}:15000"
    size = len(requests.get(base_direct + args.path, timeout=60).content)
    # warm both paths once (imports, TLS context, connection pools) before counting anything
    with port_forward(config, pod, 15000) as port:
        requests.get(f"http://127.0.0.1:{port}{args.path}", timeout=60).close()
    threads_before, fds_before = threading.active_count(), open_fds()

    with port_forward(config, pod, 15000) as port:
        base_pf = f"http://127.0.0.1:{port}"
        seq_keep = sequential(base_pf, base_direct, args.path, args.sequential, keepalive=True)
        seq_new = sequential(base_pf, base_direct, args.path, args.sequential, keepalive=False)
        bursts = []
        for _ in range(args.bursts):  # interleaved bursts: pf, direct, pf, direct...
            bursts.append((concurrent_burst(base_pf, args.path, args.concurrent),
                           concurrent_burst(base_direct, args.path, args.concurrent)))
        threads_open = len(relay_threads())
    parsed = admin_parsed(config, pod, pod_ip, args.parsed)
    time.sleep(0.2)  # let closed sockets' threads finish their last bookkeeping
    threads_after, fds_after, leftover = threading.active_count(), open_fds(), relay_threads()

    print("## Admin fetches through the port-forward\n")
    print(f"`{command}` — target `{pod.namespace}/{pod.name}`, `GET {args.path}` = "
          f"{size / 1e6:.2f} MB per fetch; one `port_forward()` for all fetches; pf and direct "
          f"interleaved fetch by fetch (bursts: alternately). {os.cpu_count()} CPUs.\n")
    print("| fetches | pf total ms | pf median ms/fetch | direct total ms | "
          "direct median ms/fetch | per-fetch ratio | overhead ms/fetch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(row(f"{args.sequential} sequential, keep-alive (1 connection, 1 WebSocket)", *seq_keep))
    print(row(f"{args.sequential} sequential, new connection each (1 WebSocket each)", *seq_new))
    walls_pf = [b[0][0] for b in bursts]
    walls_direct = [b[1][0] for b in bursts]
    per_pf = [t for b in bursts for t in b[0][1]]
    per_direct = [t for b in bursts for t in b[1][1]]
    print(f"| {args.concurrent} concurrent (median of {args.bursts} bursts; total = burst "
          f"wall time) | {ms(statistics.median(walls_pf))} | {ms(statistics.median(per_pf))} | "
          f"{ms(statistics.median(walls_direct))} | {ms(statistics.median(per_direct))} | "
          f"{statistics.median(per_pf) / statistics.median(per_direct):.2f}× | "
          f"{ms(statistics.median(per_pf) - statistics.median(per_direct))} |")
    print(row(f"{args.parsed} × `EnvoyAdmin.config_dump()` (fetch + json parse), "
              f"`open_admin` vs direct", *parsed))
    leaks = threads_after != threads_before or fds_after != fds_before or leftover
    print(f"\nThroughput, keep-alive: {size / statistics.median(seq_keep[0]) / 1e6:.0f} MB/s "
          f"through the port-forward, {size / statistics.median(seq_keep[1]) / 1e6:.0f} MB/s "
          f"direct.\n")
    print(f"Leak check (this process, after warm-up → after every forward closed): threads "
          f"{threads_before} → {threads_after}, open fds {fds_before} → {fds_after}, relay "
          f"threads left {len(leftover)} (after the bursts, before closing the forward: "
          f"{threads_open}, the acceptor). **{'LEAK' if leaks else 'no leak'}**.")
    return 1 if leaks else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequential", type=int, default=100)
    p.add_argument("--concurrent", type=int, default=20)
    p.add_argument("--bursts", type=int, default=5)
    p.add_argument("--parsed", type=int, default=20)
    p.add_argument("--path", default="/config_dump")
    p.add_argument("--kubeconfig", help="use this cluster instead of starting a sandbox")
    p.add_argument("--pod", help="NS/NAME of the target pod (with --kubeconfig)")
    p.add_argument("--pod-ip", help="its pod IP (with --kubeconfig)")
    args = p.parse_args(argv)
    command = (f".venv/bin/python benchmarks/portforward_fetch.py --sequential {args.sequential}"
               f" --concurrent {args.concurrent} --bursts {args.bursts} --path {args.path}")
    if args.kubeconfig:
        ns, name = args.pod.split("/")
        return run(load_config(args.kubeconfig), types.SimpleNamespace(namespace=ns, name=name),
                   args.pod_ip, args, command)

    from sandbox.testing import RunningSandbox
    with tempfile.TemporaryDirectory(prefix="bench-pf-") as tmp:
        sandbox = RunningSandbox(pathlib.Path(tmp) / "state")
        try:
            sandbox.up()
            gw = sandbox.pods("istio-system", "istio=ingressgateway")[0]
            pod = types.SimpleNamespace(namespace="istio-system", name=gw["metadata"]["name"])
            ip = gw["status"]["podIP"]
            sandbox.wait_for(lambda: requests.get(f"http://{ip}:15000/ready").ok, 30,
                             what="the gateway's Envoy to be ready")
            return run(load_config(str(sandbox.kubeconfig)), pod, ip, args, command)
        finally:
            sandbox.down()


if __name__ == "__main__":
    sys.exit(main())
