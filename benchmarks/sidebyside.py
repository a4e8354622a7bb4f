"""Interleaved side-by-side timing of commands, shared by the istioctl benchmarks.

`side_by_side(cases, env, runs)` runs every command of every case once to warm caches, then
`runs` rounds in which each command runs once in turn (so load drifts hit all alike), and
returns markdown: per case, each command's median and runs, and the first command's median
divided by this one's (above 1: this command is faster than the first); the same for the
child's CPU time (`os.wait4`), steadier than the wall time on a loaded machine.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from routes_scale import run_child

ROOT = pathlib.Path(__file__).resolve().parent.parent

Cases = dict[str, dict[str, list[str]]]


def run_timed(argv, env) -> tuple[float, float]:
    """(wall, CPU) seconds of one subprocess, its output read in full; the CPU (user + system,
    from os.wait4) is the child's own and its threads', kubectl's and the plugin it execs
    alike: on a loaded machine it varies less than the wall time."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env, cwd=ROOT)
        proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.stdout.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"{' '.join(map(str, argv))} exited {proc.returncode}: "
                             f"{err.read().decode(errors='replace')[-500:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def measure(cases: Cases, env, runs: int) -> dict[tuple[str, str], list[tuple[float, float]]]:
    for commands in cases.values():  # warm caches (kubectl discovery, bytecode, page cache) once
        for argv in commands.values():
            run_child(argv, env)
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(runs):
        for case, commands in cases.items():
            for name, argv in commands.items():
                times.setdefault((case, name), []).append(run_timed(argv, env))
    return times


def table(cases: Cases, times: dict[tuple[str, str], list[tuple[float, float]]]) -> str:
    lines = ["| case | command | median | runs (ms) | first ÷ this | CPU median "
             "| first ÷ this (CPU) |", "|---|---|---|---|---|---|---|"]
    for case, commands in cases.items():
        first = times[(case, next(iter(commands)))]
        base = statistics.median(w for w, _ in first)
        base_cpu = statistics.median(c for _, c in first)
        for name in commands:
            runs = times[(case, name)]
            m = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            lines.append(f"| {case} | `{name}` | {m * 1000:.0f} ms | "
                         f"{', '.join(f'{w * 1000:.0f}' for w, _ in runs)} | {base / m:.2f}× | "
                         f"{cpu * 1000:.0f} ms | {base_cpu / cpu:.2f}× |")
    return "\n".join(lines)


def side_by_side(cases: Cases, env, runs: int) -> str:
    return table(cases, measure(cases, env, runs))


@contextlib.contextmanager
def before_tree(rev: str | None):
    """The package `kubectl_mesh` as it was at git revision `rev`, in a temporary directory,
    bytecode compiled (as a pip install is); None when no revision is given."""
    if not rev:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", rev, "kubectl_mesh"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        subprocess.run([sys.executable, "-m", "compileall", "-q", tmp], check=True,
                       capture_output=True)
        yield tmp


def with_before(cases: Cases, tree: str | None, rev: str) -> Cases:
    """Each of our commands (`kubectl-mesh-*`, `kubectl mesh ...`) twice: as it is, and as it
    was at `rev` (`tree`, from `before_tree`, first on PYTHONPATH: the console scripts and
    kubectl's plugin exec import that package instead), interleaved with the rest."""
    if tree is None:
        return cases
    out: Cases = {}
    for case, commands in cases.items():
        out[case] = {}
        for name, argv in commands.items():
            out[case][name] = argv
            if name.startswith(("kubectl-mesh", "kubectl mesh")):
                out[case][f"{name} (at {rev})"] = ["env", f"PYTHONPATH={tree}", *argv]
    return out
