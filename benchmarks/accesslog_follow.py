"""`kubectl mesh accesslog -f` memory over a long followed log: RSS must not grow with it.

    .venv/bin/python benchmarks/accesslog_follow.py [--lines-per-pod 500000] [--pods 2]
                                                    [--filter "--code 5xx"]

Method: a local fake Kubernetes API (plain HTTP on 127.0.0.1) answers the pod list for
`-l app=bench` with `--pods` Running, Ready pods that have an istio-proxy container, and
streams each pod's `pods/log?follow=true&timestamps=true` as a chunked response: generated
Istio TEXT access-log lines (the parse benchmark's mix of outcomes, 1 in 20 an Envoy log line)
with the kubelet's timestamp prefix, as fast as the client reads them, then ends the stream.
The real command runs as a subprocess (`kubectl-mesh-accesslog -l app=bench -f`, stdout to
/dev/null) and its VmRSS is sampled from /proc every 0.2 s; the table gives RSS when 10 %,
25 %, 50 %, 75 % and 100 % of the lines have been served, the wall-clock rate (bounded by
this script's own line generator, ~25 k lines/s per pod, and by the machine's load) and the
rate per CPU-second the command used (its utime+stime, last sample before exit). Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accesslog_parse import ENVOY_LINES, OUTCOMES, _text  # noqa: E402

NAMESPACE = "bench"
BIN = Path(sys.executable).parent


def pod_json(name: str, ip: str) -> dict:
    return {"metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "app"}, {"name": "istio-proxy",
                                                        "args": ["proxy", "sidecar"]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def log_chunks(lines: int, seed: int, served: list, index: int):
    """Chunks (~64 KB) of `lines` timestamped log lines; counts what was served."""
    rnd = random.Random(seed)
    weights = [o[0] for o in OUTCOMES]
    t = datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)
    batch = []
    for i in range(lines):
        t += timedelta(microseconds=rnd.randrange(2000))
        stamp = t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
        if i % 20 == 19:
            text = rnd.choice(ENVOY_LINES).format(t=t.isoformat()[:-6] + "Z")
        else:
            text = _text(t, rnd, rnd.choices(OUTCOMES, weights)[0])
        batch.append(f"{stamp} {text}\n")
        if len(batch) == 200:
            served[index] += len(batch)
            yield "".join(batch).encode()
            batch = []
    if batch:
        served[index] += len(batch)
        yield "".join(batch).encode()


def make_handler(pods: list[dict], lines: int, served: list):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _json(self, obj):
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?")[0]
            prefix = f"/api/v1/namespaces/{NAMESPACE}/pods"
            if path == prefix:
                return self._json({"kind": "PodList", "items": pods, "metadata": {}})
            name = path[len(prefix) + 1:].split("/")[0]
            index = next((i for i, p in enumerate(pods) if p["metadata"]["name"] == name), None)
            if index is None or not path.endswith("/log"):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            # Nagle + delayed ACK would stall each chunk's tail by 40 ms: measure the client.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in log_chunks(lines, index, served, index):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
    return Handler


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (rates per CPU second do not depend on the machine's load)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines-per-pod", type=int, default=500_000)
    ap.add_argument("--pods", type=int, default=2)
    ap.add_argument("--filter", default="", help='extra flags, e.g. "--code 5xx"')
    args = ap.parse_args(argv)
    served = [0] * args.pods
    pods = [pod_json(f"bench-{i}", f"10.1.0.{i + 2}") for i in range(args.pods)]
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 make_handler(pods, args.lines_per_pod, served))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    workdir = Path(tempfile.mkdtemp(prefix="accesslog-follow-bench-"))
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "bench",
        "clusters": [{"name": "bench", "cluster": {
            "server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "users": [{"name": "bench", "user": {"token": "bench"}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench",
                                                   "namespace": NAMESPACE}}]}))
    cmd = [str(BIN / "kubectl-mesh-accesslog"), "-l", "app=bench", "-f", "--kubeconfig",
           str(kubeconfig), *shlex.split(args.filter)]
    total = args.lines_per_pod * args.pods
    marks = [0.10, 0.25, 0.50, 0.75, 1.00]
    at_mark: dict[float, int] = {}
    samples = []
    cpu = 0.0
    started = time.perf_counter()
    try:
        with open(os.devnull, "w") as devnull:
            proc = subprocess.Popen(cmd, stdout=devnull, stderr=subprocess.PIPE, text=True)
            while proc.poll() is None:
                rss = rss_kib(proc.pid)
                cpu = cpu_seconds(proc.pid) or cpu
                done = sum(served) / total
                if rss is not None:
                    samples.append(rss)
                    for m in marks:
                        if done >= m and m not in at_mark:
                            at_mark[m] = rss
                time.sleep(0.2)
            seconds = time.perf_counter() - started
            err = proc.stderr.read()
        if proc.returncode != 0:
            print(f"command failed ({proc.returncode}): {err}", file=sys.stderr)
            return 1
    finally:
        server.shutdown()
        kubeconfig.unlink()
        workdir.rmdir()
    marks_text = ", ".join(f"{int(m * 100)} %: {at_mark[m] / 1024:.1f} MiB"
                           for m in marks if m in at_mark)
    command = shlex.join(["python", "benchmarks/accesslog_follow.py",
                          *(argv if argv is not None else sys.argv[1:])])
    print(f"| follow, {args.pods} pods × {args.lines_per_pod:,} lines"
          f"{' ' + args.filter if args.filter else ', every row printed'} | "
          f"{total / seconds:,.0f} lines/s wall ({seconds:.1f} s), "
          f"{total / cpu:,.0f} lines per CPU-second of the command (≥{cpu:.1f} s CPU) | RSS {marks_text}; "
          f"max {max(samples) / 1024:.1f} MiB over {len(samples)} samples | `{command}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
