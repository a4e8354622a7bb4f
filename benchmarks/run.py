"""Run benchmark scripts: `python benchmarks/run.py [NAME...]` (default: all of them).

Every `benchmarks/*.py` other than this runner is a benchmark; each prints markdown to
stdout. Each runs as its own subprocess with this interpreter, so nothing a benchmark
imports (or leaks) skews another, and the runner itself imports nothing it measures.

    python benchmarks/run.py --list
    python benchmarks/run.py startup portforward_fetch
    python benchmarks/run.py routes_scale -- --runs 7     # arguments after -- go to each script
"""

from __future__ import annotations

import argparse
import pathlib
import signal
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def discover(directory: pathlib.Path = HERE) -> dict[str, pathlib.Path]:
    """{name: path} of the benchmark scripts in `directory` (this runner and _helpers excluded)."""
    return {p.stem: p for p in sorted(directory.glob("*.py"))
            if p.name != pathlib.Path(__file__).name and not p.name.startswith("_")}


def run_one(path: pathlib.Path, extra: list[str]) -> int:
    """Run one script, streaming its markdown to our stdout; returns its exit code."""
    started = time.monotonic()
    print(f"<!-- {path.stem}: {sys.executable} {path.relative_to(ROOT)} {' '.join(extra)} -->",
          flush=True)
    child = subprocess.Popen([sys.executable, str(path), *extra], cwd=ROOT)
    # SIGTERM/SIGHUP to the runner end the running benchmark too (its sandboxes watch it
    # and stop when it ends: `sandbox up --owner`).
    def end(signum, _frame):
        child.terminate()  # not waited for here: the interrupted wait() holds its lock
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, end) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        code = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    print(f"<!-- {path.stem}: exit {code} after {time.monotonic() - started:.1f}s -->\n",
          flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    p = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="benchmark script names (with or without .py); default: all")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args(argv)
    scripts = discover()
    if args.list:
        print("\n".join(scripts))
        return 0
    names = [n.removesuffix(".py") for n in args.names] or list(scripts)
    unknown = [n for n in names if n not in scripts]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(scripts)}")
    failed = [n for n in names if run_one(scripts[n], extra) != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
