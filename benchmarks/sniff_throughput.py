"""Capture loss and throughput of `kubectl mesh sniff` (tcpdump over the exec stream) under a
bulk transfer, optionally against a baseline checkout in the same run.

For each tree (this checkout, and `--baseline DIR`, e.g. `git archive HEAD | tar -x -C DIR`)
a sandbox is started from that tree. Then, alternating between the trees so both see the same
machine load, for each `--bytes` size:
- the exec stream alone: `head -c 100000000 /dev/zero` exec'd in a catalog pod, read by that tree's
  `ExecStream` (MB/s and client CPU);
- a capture: `kubectl mesh sniff POD -o FILE -f 'tcp port 3000'` (auto mode: an ephemeral
  container) while the benchmark GETs /bulk?bytes=N from the pod's app port; a reference host
  tcpdump (same filter, `-B 262144`, stopped with SIGINT so it reports its count) runs
  alongside. Loss = reference packets - packets in the file.
Run:

    .venv/bin/python benchmarks/sniff_throughput.py --bytes 10e6 50e6 100e6 --runs 3 \\
        --baseline /tmp/sniff-before
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubectl_mesh.capture.pcap import read_file  # noqa: E402
from sandbox.testing import kubectl_binary  # noqa: E402

FILTER = "tcp port 3000"
STREAM_BYTES = 100_000_000  # the exec-stream probe: large enough that set-up does not count
# Run with the tree's own ExecStream: bytes, wall seconds and client CPU seconds as JSON.
STREAM_PROBE = """
import json, sys, time
from kubectl_mesh.kube.kubeconfig import load_config
from kubectl_mesh.kube.execstream import open_exec
kubeconfig, pod, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = load_config(kubeconfig, None, None)
stream = open_exec(config, "istioinaction", pod, ["head", "-c", str(n), "/dev/zero"],
                   container="catalog")
got = [0]
def count(data):
    got[0] += len(data)
wall, cpu = time.perf_counter(), time.process_time()
stream.run(count, lambda data: None)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
stream.close()
print(json.dumps({"bytes": got[0], "wall": wall, "cpu": cpu}))
"""


class TreeSandbox:
    """A sandbox started from (and a sniff run with) one source tree."""

    def __init__(self, name: str, tree: pathlib.Path, state: pathlib.Path):
        self.name, self.tree, self.state = name, tree, state
        self.env = dict(os.environ, PYTHONPATH=str(tree), KUBECONFIG=str(state / "kubeconfig"),
                        KUBECACHEDIR=str(state / "kubectl-cache"))
        self.env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{self.env['PATH']}"

    def up(self) -> "TreeSandbox":
        subprocess.run([sys.executable, "-m", "sandbox", "up", "--detach", "--state",
                        str(self.state), "--timeout", "120"], cwd=self.tree, env=self.env,
                       check=True, capture_output=True, timeout=180)
        return self

    def down(self) -> None:
        subprocess.run([sys.executable, "-m", "sandbox", "down", "--state", str(self.state)],
                       cwd=self.tree, env=self.env, capture_output=True, timeout=60)

    def pod(self) -> dict:
        out = subprocess.run([kubectl_binary(), "get", "pods", "-n", "istioinaction", "-l",
                              "app=catalog,version=v2", "-o", "json"], env=self.env,
                             capture_output=True, text=True, check=True, timeout=30)
        return sorted(json.loads(out.stdout)["items"], key=lambda p: p["metadata"]["name"])[0]


def tcpdump_pids(ip: str) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"tcpdump") and b"-U" in argv and any(ip.encode() in a for a in argv):
            pids.append(int(pid))
    return pids


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stream_probe(sb: TreeSandbox, pod: str, nbytes: int) -> dict:
    server = int((sb.state / "sandbox.pid").read_text())
    server_cpu = cpu_seconds(server)
    out = subprocess.run([sys.executable, "-c", STREAM_PROBE, str(sb.state / "kubeconfig"), pod,
                          str(nbytes)], env=sb.env, cwd=sb.tree, capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"stream probe failed: {out.stderr[-2000:]}")
    server_cpu = cpu_seconds(server) - server_cpu  # includes the sandbox's idle work
    r = json.loads(out.stdout)
    per_100mb = r["bytes"] / 1e8
    return {"stream_MBps": r["bytes"] / 1e6 / r["wall"],
            "client_cpu_s_per_100MB": r["cpu"] / per_100mb,
            "server_cpu_s_per_100MB": server_cpu / per_100mb}


def capture(sb: TreeSandbox, pod: dict, nbytes: int, workdir: pathlib.Path,
            extra: list[str]) -> dict:
    ip, name = pod["status"]["podIP"], pod["metadata"]["name"]
    out, ref = workdir / f"{sb.name}-bulk.pcap", workdir / f"{sb.name}-ref.pcap"
    sniff = subprocess.Popen([kubectl_binary(), "mesh", "sniff", f"{name}.istioinaction",
                              "-o", str(out), "-f", FILTER, *extra], env=sb.env,
                             stderr=subprocess.PIPE)
    wait_for(lambda: tcpdump_pids(ip), 60, "the capture's tcpdump")
    reference = subprocess.Popen(["tcpdump", "-i", "lo", "-w", str(ref), "-B", "262144",
                                  f"host {ip} and ({FILTER})"], stderr=subprocess.PIPE)
    time.sleep(1.0)
    started = time.monotonic()
    with urllib.request.urlopen(f"http://{ip}:3000/bulk?bytes={nbytes}", timeout=120) as r:
        got = len(r.read())
    transfer = time.monotonic() - started
    # The capture has drained when the file stops growing (1 s without a change).
    size, last_change = -1, time.monotonic()
    while time.monotonic() - last_change < 1.0:
        now = out.stat().st_size if out.exists() else 0
        if now != size:
            size, last_change = now, time.monotonic()
        time.sleep(0.02)
    drained = last_change - started
    reference.send_signal(signal.SIGINT)
    ref_err = reference.communicate(timeout=30)[1].decode()
    # Stop the capture's tcpdump like Ctrl-C stops a local one: it reports its own count and
    # kernel drops, which sniff relays; then sniff ends by itself.
    for pid in tcpdump_pids(ip):
        os.kill(pid, signal.SIGINT)
    try:
        sniff_err = sniff.communicate(timeout=30)[1].decode()
    except subprocess.TimeoutExpired:
        sniff.send_signal(signal.SIGINT)
        sniff_err = sniff.communicate(timeout=60)[1].decode()
    ref_count = int(re.search(r"(\d+) packets captured", ref_err).group(1))
    told = re.search(r"tcpdump: (\d+) packets captured, (\d+) dropped by kernel", sniff_err)
    _, records = read_file(str(out))
    assert got == nbytes, f"the bulk GET returned {got} of {nbytes} bytes"
    return {"transfer_s": transfer, "drained_s": drained,
            "capture_MBps": size / 1e6 / drained if drained > 0 else 0.0,
            "packets_in_file": len(records), "reference_packets": ref_count,
            "reference_dropped": int(re.search(r"(\d+) packets dropped by kernel",
                                               ref_err).group(1)),
            "tcpdump_captured": int(told[1]) if told else None,
            "tcpdump_dropped": int(told[2]) if told else None,
            "loss": ref_count - len(records), "sniff_exit": sniff.returncode,
            "sniff_summary": sniff_err.strip().splitlines()[-1] if sniff_err.strip() else ""}


def summarise(name: str, nbytes: int, runs: list[dict]) -> str:
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    losses = [r["loss"] for r in runs]
    refs = [r["reference_packets"] for r in runs]
    pct = [100.0 * loss / ref for loss, ref in zip(losses, refs) if ref]
    return (f"| {name} | {nbytes / 1e6:.0f} MB | {med('stream_MBps'):.0f} MB/s | "
            f"{med('client_cpu_s_per_100MB') * 1000:.0f} / "
            f"{med('server_cpu_s_per_100MB') * 1000:.0f} ms | "
            f"{', '.join(f'{l}/{r}' for l, r in zip(losses, refs))} | "
            f"{statistics.median(pct):.1f} % | "
            f"{', '.join(str(r['tcpdump_dropped']) for r in runs)} | {med('transfer_s'):.2f} s | "
            f"{med('drained_s'):.2f} s |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=float, nargs="+", default=[10e6, 50e6, 100e6])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=pathlib.Path,
                        help="a checkout of the code to compare with (e.g. git archive HEAD)")
    parser.add_argument("--sniff-args", default="",
                        help="extra `kubectl mesh sniff` flags for this tree, e.g. "
                             "'--buffer-size 32Mi'")
    parser.add_argument("--json", action="store_true", help="print every run as JSON too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sniff-bench-") as tmp:
        tmpdir = pathlib.Path(tmp)
        trees = [("after", ROOT, args.sniff_args.split())]
        if args.baseline:
            trees.insert(0, ("before", args.baseline.resolve(), []))
        sandboxes = []
        try:
            for name, tree, _ in trees:
                sandboxes.append(TreeSandbox(name, tree, tmpdir / f"state-{name}").up())
            pods = [sb.pod() for sb in sandboxes]
            results: dict = {}
            for nbytes in map(int, args.bytes):
                for run in range(args.runs):
                    for sb, pod, (_, _, extra) in zip(sandboxes, pods, trees):
                        r = stream_probe(sb, pod["metadata"]["name"], STREAM_BYTES)
                        r.update(capture(sb, pod, nbytes, tmpdir, extra))
                        results.setdefault((sb.name, nbytes), []).append(r)
                        if args.json:
                            print(json.dumps({"tree": sb.name, "bytes": nbytes, **r}))
        finally:
            for sb in sandboxes:
                sb.down()
    print("| code | bulk | exec stream (100 MB) | CPU per 100 MB client / server | lost/reference packets "
          "per run | loss (median) | tcpdump's kernel drops | transfer | drained after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, nbytes), runs in results.items():
        print(summarise(name, nbytes, runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
