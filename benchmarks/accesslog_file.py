"""`accesslog --file` against the bare parser on the same log, side by side in one run.

    .venv/bin/python benchmarks/accesslog_file.py [--before REF] [--after REF]
        [--lines 1000000] [--runs 3] [--log FILE]

The log is benchmarks/accesslog_parse.py's TEXT log (generated unless `--log` is given).
Each round runs, as subprocesses with stdout read in full (as a pager would): the bare
parser (`parse_lines` over the file, records dropped), then `accesslog --file LOG` and
`accesslog --file LOG -o json` from `--before REF` and `--after REF` (default: this tree
as it is), each exported with `git archive` and run from PYTHONPATH. Rounds repeat
`--runs` times; the medians are printed. CPU seconds (user + sys, from wait4) are the figure to compare on a shared machine; the
ratio is each command's CPU over the parser's in the same round. Peak RSS is the child's.
Prints markdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from accesslog_parse import generate  # noqa: E402
from file_scale import entry, measure  # noqa: E402

PARSER = ("import sys\nfrom kubectl_mesh.accesslog.parser import ParseStats, parse_lines\n"
          "with open(sys.argv[1]) as f:\n    for _ in parse_lines(f, ParseStats()):\n"
          "        pass\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="main")
    ap.add_argument("--after", help="a ref to export instead of using this tree")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--log", help="an existing log to use (else generated, then removed)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="accesslog-file-"))
    try:
        trees = {"before": work / "before", "after": work / "after" if args.after else ROOT}
        for version, ref in (("before", args.before), ("after", args.after)):
            if ref:
                trees[version].mkdir()
                archive = subprocess.run(["git", "archive", ref, "kubectl_mesh"], cwd=ROOT,
                                         capture_output=True, check=True).stdout
                subprocess.run(["tar", "-x", "-C", str(trees[version])], input=archive,
                               check=True)
        log = Path(args.log) if args.log else work / "text.log"
        if not args.log:
            generate(log, args.lines, mixed=False)
        cases = [("parser alone", PARSER, [], None)]
        for label, extra in (("accesslog --file (table)", []),
                             ("accesslog --file -o json", ["-o", "json"])):
            cases += [(label, entry("accesslog"), ["--file", str(log), *extra], "before"),
                      (label, entry("accesslog"), ["--file", str(log), *extra], "after")]
        results: dict[tuple[str, str | None], list[tuple[float, float, int, float]]] = {}
        load = os.getloadavg()[0]
        for _ in range(args.runs):
            parser_cpu = None
            for label, code, extra, version in cases:
                path = str(trees[version or "after"])
                if version is None:
                    wall, cpu, rss = measure([code, str(log)], path)
                    parser_cpu = cpu
                else:
                    wall, cpu, rss = measure([code, *extra], path)
                results.setdefault((label, version), []).append(
                    (wall, cpu, rss, cpu / parser_cpu))
        print(f"{log.stat().st_size / 1e6:.0f} MB, {args.runs} rounds, load average "
              f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; medians "
              f"(each round's ratios in brackets)\n")
        print(f"| command | version | wall | CPU | peak RSS | CPU / parser CPU |")
        print("|---|---|---|---|---|---|")
        for (label, version), rows in results.items():
            wall, cpu, rss, ratio = (statistics.median(r[i] for r in rows) for i in range(4))
            each = ", ".join(f"{r[3]:.2f}" for r in rows)
            name = {"before": args.before, "after": args.after or "this tree"}.get(version, "-")
            print(f"| `{label}` | {name} | {wall:.1f} s | {cpu:.2f} s | {rss / 1024:.0f} MiB "
                  f"| {ratio:.2f}x ({each}) |")
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
