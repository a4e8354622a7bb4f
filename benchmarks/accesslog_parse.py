"""Access-log parser throughput and memory on a generated 1 M-line istio-proxy log.

    .venv/bin/python benchmarks/accesslog_parse.py [--lines 1000000] [--keep FILE]

Two logs are generated to a temporary file (streamed, never held in memory): TEXT only
(Istio's default format, mixed flags/codes), and a mix (70 % TEXT, 15 % JSON, 15 % Envoy /
pilot-agent log lines, a few truncated). Each is parsed from the open file (an iterator) and
timed; peak memory is measured in a second pass with tracemalloc, at 1/10 of the log and at
the full log, to show it does not grow with the log. Prints markdown-ready result lines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubectl_mesh.accesslog import ParseStats, parse_lines  # noqa: E402

OUTCOMES = [  # (weight, code, flags, details, upstream service time known)
    (80, 200, "-", "via_upstream", True), (5, 503, "-", "via_upstream", True),
    (4, 504, "UT", "response_timeout", False), (3, 503, "UH", "no_healthy_upstream", False),
    (3, 503, "URX,UF", "upstream_reset_before_response_started{remote_connection_failure}", False),
    (2, 404, "NR", "route_not_found", False), (2, 0, "DC", "downstream_remote_disconnect", False),
    (1, 503, "NC", "cluster_not_found", False),
]
ENVOY_LINES = [
    "[{t}][12][warning][config] external/envoy/source/extensions/config_subscription/grpc/"
    "grpc_stream.h:155] StreamAggregatedResources gRPC config stream to xds-grpc closed: 13,",
    "{t}\twarning\tenvoy config external/envoy/source/common/config/grpc_stream.h:163\t"
    "gRPC config stream closed since 2s ago: 14, connection error\tthread=17",
    "{t}\tinfo\txdsproxy\tconnected to upstream XDS server: istiod.istio-system.svc:15012",
]


def _text(t: datetime, rnd: random.Random, outcome) -> str:
    _, code, flags, details, timed = outcome
    ip = f"10.244.{rnd.randrange(4)}.{rnd.randrange(2, 250)}"
    return (f'[{t.isoformat(timespec="milliseconds")[:-6]}Z] "GET /items/{rnd.randrange(1000)} '
            f'HTTP/1.1" {code} {flags} {details} - "-" 0 {rnd.randrange(5000)} '
            f'{rnd.randrange(1, 900)} {rnd.randrange(1, 800) if timed else "-"} "-" '
            f'"Mozilla/5.0 (X11; Linux x86_64)" "{rnd.getrandbits(128):032x}" '
            f'"catalog.istioinaction:80" "{ip}:3000" outbound|80||catalog.istioinaction.svc.'
            f"cluster.local 10.244.0.11:46214 10.96.12.34:80 10.244.0.11:50524 - default")


def _json(t: datetime, rnd: random.Random, outcome) -> str:
    _, code, flags, details, timed = outcome
    return json.dumps({
        "start_time": t.isoformat(timespec="milliseconds")[:-6] + "Z", "method": "GET",
        "path": f"/items/{rnd.randrange(1000)}", "protocol": "HTTP/1.1", "response_code": code,
        "response_flags": flags, "response_code_details": details,
        "connection_termination_details": None, "upstream_transport_failure_reason": None,
        "bytes_received": 0, "bytes_sent": rnd.randrange(5000), "duration": rnd.randrange(900),
        "upstream_service_time": str(rnd.randrange(800)) if timed else None,
        "x_forwarded_for": None, "user_agent": "curl/8.5.0",
        "request_id": f"{rnd.getrandbits(128):032x}", "authority": "catalog.istioinaction:80",
        "upstream_host": "10.244.1.7:3000",
        "upstream_cluster": "outbound|80||catalog.istioinaction.svc.cluster.local",
        "upstream_local_address": "10.244.0.11:46214", "downstream_local_address": "10.96.12.34:80",
        "downstream_remote_address": "10.244.0.11:50524", "requested_server_name": None,
        "route_name": "default"}, separators=(",", ":"))


def generate(path: Path, lines: int, mixed: bool, seed: int = 1) -> None:
    rnd = random.Random(seed)
    weights = [o[0] for o in OUTCOMES]
    t = datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)
    with open(path, "w") as f:
        for i in range(lines):
            t += timedelta(microseconds=rnd.randrange(2000))
            outcome = rnd.choices(OUTCOMES, weights)[0]
            kind = rnd.random() if mixed else 0.0
            if kind < 0.70:
                line = _text(t, rnd, outcome)
            elif kind < 0.85:
                line = _json(t, rnd, outcome)
            else:
                line = rnd.choice(ENVOY_LINES).format(t=t.isoformat()[:-6] + "Z")
            if mixed and i % 10_000 == 9_999:
                line = line[: len(line) // 2]  # a truncated line now and then
            f.write(line + "\n")


def timed_parse(path: Path) -> tuple[float, ParseStats]:
    stats = ParseStats()
    start = time.perf_counter()
    with open(path) as f:
        for _ in parse_lines(f, stats):
            pass
    return time.perf_counter() - start, stats


def peak_memory(path: Path, limit: int) -> int:
    """tracemalloc peak (bytes) while parsing the first `limit` lines from the file."""
    tracemalloc.start()
    try:
        with open(path) as f:
            for _ in parse_lines(line for _, line in zip(range(limit), f)):
                pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--keep", help="directory to keep the generated logs in")
    args = ap.parse_args(argv)
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="accesslog-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/accesslog_parse.py" + (
        f" --lines {args.lines}" if args.lines != 1_000_000 else "")
    try:
        for name, mixed in (("text", False), ("mixed", True)):
            path = workdir / f"{name}.log"
            generate(path, args.lines, mixed)
            size = path.stat().st_size
            seconds, stats = timed_parse(path)
            small = peak_memory(path, max(1, args.lines // 10))
            full = peak_memory(path, args.lines)
            print(f"| {name} | {args.lines:,} lines, {size / 1e6:.0f} MB | "
                  f"{args.lines / seconds:,.0f} lines/s ({seconds:.2f} s) | "
                  f"records {stats.records:,}, skipped {stats.skipped:,}, "
                  f"malformed {stats.malformed:,} | peak traced memory "
                  f"{small / 1024:.0f} KiB at {args.lines // 10:,} lines, "
                  f"{full / 1024:.0f} KiB at {args.lines:,} | `{command}` |")
            sys.stdout.flush()
    finally:
        if not args.keep:
            for p in workdir.iterdir():
                p.unlink()
            os.rmdir(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
