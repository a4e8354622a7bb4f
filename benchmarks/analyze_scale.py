"""`kubectl mesh analyze` on a generated mesh: N Services, N VirtualServices and N
DestinationRules (plus 2N pods for the cluster-only analyzers), analyzed offline.

    .venv/bin/python benchmarks/analyze_scale.py [--services 5000] [--runs 5]
    .venv/bin/python benchmarks/analyze_scale.py --write mesh.yaml --services 5000

Measures (1) the whole command as a subprocess, `kubectl-mesh-analyze --use-kube=false
mesh.yaml -A` (parse, index, analyze, write), at N/4, N/2 and N to show it is linear, and
(2) in process, with a pod per subset added, every analyzer – including those that need pods
and Services, which the file-only command skips as istioctl does – on the parsed objects. One VirtualService in 100
routes to a subset its DestinationRule does not define, so each run reports N/100 IST0101s.
Prints markdown.
"""

from __future__ import annotations

import argparse
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent
TARGET = 2.0
NAMESPACES = 50


def generate(services: int, pods: bool = False) -> str:
    """Multi-document YAML of the mesh: per service a Service, a DestinationRule with subsets
    v1 and v2 and a VirtualService splitting between them (`pods`: and a pod per subset)."""
    docs = []
    for i in range(services):
        ns, name = f"ns-{i % NAMESPACES}", f"svc-{i}"
        missing = "v3" if i % 100 == 0 else "v2"
        docs.append(f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
""")
        for version in ("v1", "v2") if pods else ():
            docs.append(f"""apiVersion: v1
kind: Pod
metadata: {{name: {name}-{version}, namespace: {ns}, labels: {{app: {name}, version: {version}}}}}
spec: {{containers: [{{name: app}}, {{name: istio-proxy}}]}}
""")
        docs.append(f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  host: {name}.{ns}.svc.cluster.local
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
""")
        docs.append(f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{name}]
  http:
  - route:
    - destination: {{host: {name}, subset: v1}}
      weight: 90
    - destination: {{host: {name}, subset: {missing}}}
      weight: 10
""")
    return "---\n".join(docs)


def command_seconds(path: pathlib.Path, expected: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of the command; CPU (user+sys of the child) is the
    steadier figure on a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "kubectl-mesh-analyze"), "--use-kube=false", str(path),
                           "-A"], capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = done.stdout.count("[IST0101]")
    if done.returncode != 7 or found != expected:
        raise SystemExit(f"expected exit 7 and {expected} IST0101, got {done.returncode} and "
                         f"{found}: {done.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def in_process(path: pathlib.Path) -> tuple[float, float, int]:
    """(parse seconds, all-analyzers seconds, messages) in this process."""
    from kubectl_mesh.analyze import files
    from kubectl_mesh.analyze.analyzers import all_analyzers
    from kubectl_mesh.analyze.command import analyze
    from kubectl_mesh.analyze.resources import Store

    started = time.perf_counter()
    store = Store()
    store.extend(files.read([str(path)], "default"))
    parsed = time.perf_counter()
    messages = analyze(store, list(all_analyzers()), None)
    return parsed - started, time.perf_counter() - parsed, len(messages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", metavar="PATH", help="only write the generated mesh there")
    parser.add_argument("--pods", action="store_true", help="with --write: a pod per subset too")
    args = parser.parse_args()
    if args.write:
        pathlib.Path(args.write).write_text(generate(args.services, pods=args.pods))
        return 0
    sizes = [args.services // 4, args.services // 2, args.services]
    with tempfile.TemporaryDirectory() as tmp:
        paths, with_pods = {}, {}
        for n in sizes:
            paths[n] = pathlib.Path(tmp) / f"mesh-{n}.yaml"
            paths[n].write_text(generate(n))
            with_pods[n] = pathlib.Path(tmp) / f"mesh-pods-{n}.yaml"
            with_pods[n].write_text(generate(n, pods=True))
        rows = []
        for n in sizes:
            runs = [command_seconds(paths[n], (n + 99) // 100) for _ in range(args.runs)]
            times = [wall for wall, _ in runs]
            parse, analyze_s, count = in_process(with_pods[n])
            rows.append((n, paths[n].stat().st_size, statistics.median(times), min(times),
                         statistics.median(cpu for _, cpu in runs), parse, analyze_s, count))
    print(f"`kubectl-mesh-analyze --use-kube=false mesh.yaml -A`, median of {args.runs} runs "
          f"(N Services + N VirtualServices + N DestinationRules in {NAMESPACES} namespaces); "
          f"in process: the same plus 2N pods, every analyzer:\n")
    print("| N | file | command median | min | CPU median | CPU per object | in process: parse "
          "(5N objects) | every analyzer | messages |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, size, median, fastest, cpu, parse, analyze_s, count in rows:
        print(f"| {n} | {size / 1e6:.1f} MB | {median:.2f} s | {fastest:.2f} s | {cpu:.2f} s | "
              f"{cpu / (3 * n) * 1e6:.0f} µs | {parse:.2f} s | {analyze_s * 1000:.0f} ms | "
              f"{count} |")
    worst = rows[-1][2]
    print(f"\ntarget ≤ {TARGET:.1f} s at N={args.services}: "
          f"{'met' if worst <= TARGET else 'NOT met'} ({worst:.2f} s)")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
