"""`--file` at scale: `accesslog --file` on a 1 M-line log and `routes --file -o json` on a
~194 MB dump, this tree against an older commit, side by side in one run.

    .venv/bin/python benchmarks/file_scale.py [--before REF] [--lines 1000000]
        [--vhosts 34000] [--runs 1] [--keep DIR]

The log is benchmarks/accesslog_parse.py's TEXT log; the dump is the ingress gateway dump of
/work/shared/istio-dumps with its virtual host copied `--vhosts` times (34000 ≈ 194 MB).
`--before REF` (default: the merge base with main's first parent, here `ceaf87b`) is
exported with `git archive` to a temporary directory and run with PYTHONPATH pointing at it,
so both versions use the same interpreter and packages. Each command runs as a subprocess
with stdout read in full (as a pager would); wall time and the child's peak RSS (wait4)
are reported, runs interleaved before/after. The parser's own rate on the same log (no
output) is measured in the same run, for the "within 2x the parse rate" target.
Prints markdown.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accesslog_parse import generate, timed_parse  # noqa: E402

DUMP = Path("/work/shared/istio-dumps/ingressgw_http_8080_rds_cds.json")


def big_dump(path: Path, vhosts: int) -> None:
    doc = json.loads(DUMP.read_text())
    section = next(c for c in doc["configs"] if c["@type"].endswith(".RoutesConfigDump"))
    config = section["dynamic_route_configs"][0]["route_config"]
    template = config["virtual_hosts"][0]
    config["virtual_hosts"] = [
        dict(copy.deepcopy(template), name=f"svc-{i}.example.com:80",
             domains=[f"svc-{i}.example.com", f"svc-{i}.example.com:80"])
        for i in range(vhosts)]
    path.write_text(json.dumps(doc, indent=1))


def measure(argv: list[str], pythonpath: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS KiB) of one run; its stdout read and discarded.
    CPU (user + sys) is the figure to compare on a loaded machine: wall time then mostly
    measures the other processes."""
    env = dict(os.environ, PYTHONPATH=pythonpath)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", argv[0], *argv[1:]], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, cwd="/")
    while proc.stdout.read(1 << 20):
        pass
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{argv} with PYTHONPATH={pythonpath} exited {code}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def entry(command: str) -> str:
    return f"import sys; from kubectl_mesh.cli.{command} import main; sys.exit(main())"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="ceaf87b")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--vhosts", type=int, default=34_000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--keep", help="directory for the generated inputs (kept)")
    args = ap.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="file-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    before = Path(tempfile.mkdtemp(prefix="file-scale-before-"))
    try:
        archive = subprocess.run(["git", "archive", args.before, "kubectl_mesh"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        log, dump = work / "text.log", work / "routes.json"
        if not log.exists():
            generate(log, args.lines, mixed=False)
        if not dump.exists():
            big_dump(dump, args.vhosts)
        cpu = time.process_time()
        parse_seconds, _ = timed_parse(log)
        parse_cpu = time.process_time() - cpu
        print(f"parser alone (in this process): {args.lines:,} lines in {parse_seconds:.2f} s "
              f"wall, {parse_cpu:.2f} s CPU ({args.lines / parse_cpu:,.0f} lines per CPU "
              f"second); log {log.stat().st_size / 1e6:.0f} MB, dump "
              f"{dump.stat().st_size / 1e6:.0f} MB; load average "
              f"{os.getloadavg()[0]:.1f} at the start\n")
        cases = [
            ("accesslog --file (table)", [entry("accesslog"), "--file", str(log)]),
            ("accesslog --file -o json", [entry("accesslog"), "--file", str(log), "-o", "json"]),
            ("routes --file -o json", [entry("routes"), "--file", str(dump), "-o", "json"]),
            ("routes --file (table)", [entry("routes"), "--file", str(dump)]),
        ]
        print(f"| command | before ({args.before}): wall, CPU, peak RSS | after | CPU "
              "speed-up | after CPU / parser CPU |")
        print("|---|---|---|---|---|")
        for label, cmd in cases:
            results = {"before": [], "after": []}
            for _ in range(args.runs):
                results["before"].append(measure(cmd, str(before)))
                results["after"].append(measure(cmd, str(ROOT)))
            (wb, cb, mb), (wa, ca, ma) = (min(results[k], key=lambda r: r[1])
                                          for k in ("before", "after"))
            ratio = f"{ca / parse_cpu:.1f}x" if label.startswith("accesslog") else "-"
            print(f"| `{label}` | {wb:.1f} s, {cb:.1f} s, {mb / 1024:.0f} MiB | {wa:.1f} s, "
                  f"{ca:.1f} s, {ma / 1024:.0f} MiB | {cb / ca:.1f}x | {ratio} |", flush=True)
    finally:
        subprocess.run(["rm", "-rf", str(before)], check=False)
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
