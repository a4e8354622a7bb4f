"""Interleaved side-by-side timing of commands, shared by the istioctl benchmarks.

`side_by_side(cases, env, runs)` runs every command of every case once to warm caches, then
`runs` rounds in which each command runs once in turn (so load drifts hit all alike), and
returns markdown: per case, each command's median and runs, and the first command's median
divided by this one's (above 1: this command is faster than the first).
"""

from __future__ import annotations

import statistics

from routes_scale import run_child

Cases = dict[str, dict[str, list[str]]]


def measure(cases: Cases, env, runs: int) -> dict[tuple[str, str], list[float]]:
    for commands in cases.values():  # warm caches (kubectl discovery, bytecode, page cache) once
        for argv in commands.values():
            run_child(argv, env)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(runs):
        for case, commands in cases.items():
            for name, argv in commands.items():
                times.setdefault((case, name), []).append(run_child(argv, env))
    return times


def table(cases: Cases, times: dict[tuple[str, str], list[float]]) -> str:
    lines = ["| case | command | median | runs (ms) | first ÷ this |", "|---|---|---|---|---|"]
    for case, commands in cases.items():
        base = statistics.median(times[(case, next(iter(commands)))])
        for name in commands:
            runs = times[(case, name)]
            m = statistics.median(runs)
            lines.append(f"| {case} | `{name}` | {m * 1000:.0f} ms | "
                         f"{', '.join(f'{t * 1000:.0f}' for t in runs)} | {base / m:.2f}× |")
    return "\n".join(lines)


def side_by_side(cases: Cases, env, runs: int) -> str:
    return table(cases, measure(cases, env, runs))
