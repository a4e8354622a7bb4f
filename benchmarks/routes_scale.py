"""`kubectl mesh routes` on a gateway with 5000 virtual hosts/clusters: parse+render time and
memory from a file, end to end through kubectl and the port-forward vs the floor, and bytes.

    .venv/bin/python benchmarks/routes_scale.py [--vhosts 5000] [--runs 5]
        [--state DIR]   # reuse a sandbox already up there (not stopped at the end)

Without `--state` it generates `python -m sandbox.generate --sidecars 0 --vhosts N`, starts it
detached in a temporary directory, waits until the gateway's Envoy really holds N virtual
hosts and the sandbox is idle again, measures, and stops it (`down`) in every case.
Everything measured runs as a subprocess; runs are interleaved round by round. The floor is
a direct `curl` of the same masked admin URL `routes` fetches plus `python -c pass`.
Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent
MASK = "static_route_configs,dynamic_route_configs"  # kubectl_mesh.proxyconfig.views.MASKS
TARGET = 1.5
TICK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[routes_scale] {msg}", file=sys.stderr, flush=True)


def run_child(argv, env=None) -> float:
    """Wall seconds of one subprocess (its output read in full, as a terminal would)."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} exited {done.returncode}: "
                         f"{done.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def timed_rss(argv, env=None) -> tuple[float, int, bytes]:
    """Like run_child, with the child's own peak RSS (KiB) from os.wait4."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} exited {proc.returncode}")
    return elapsed, usage.ru_maxrss, out


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, IndexError):
            pass
    return total


def sandbox_pids(state: pathlib.Path) -> list[int]:
    pids = [int((state / "sandbox.pid").read_text())] if (state / "sandbox.pid").exists() else []
    status = json.loads((state / "status.json").read_text() or "[]")
    return pids + [c["pid"] for p in status for c in p["containers"] if c.get("pid")]


def wait_idle(state: pathlib.Path, deadline: float, window: float = 3.0,
              max_cores: float = 0.15) -> float | None:
    """Wait until the sandbox's processes use < max_cores CPU over `window`; seconds waited."""
    started = time.monotonic()
    while time.monotonic() < deadline:
        pids = sandbox_pids(state)
        before = cpu_seconds(pids)
        time.sleep(window)
        if (cpu_seconds(pids) - before) / window < max_cores:
            return time.monotonic() - started
    return None


def curl(url: str, out: str = "/dev/null") -> tuple[float, int]:
    """(wall seconds, bytes) of a direct curl."""
    started = time.perf_counter()
    done = subprocess.run(["curl", "-sf", "-o", out, "-w", "%{size_download}", url],
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - started, int(done.stdout)


def count_vhosts(url: str) -> int:
    try:
        raw = subprocess.run(["curl", "-sf", url], capture_output=True, check=True).stdout
    except subprocess.CalledProcessError:
        return -1
    return sum(len(rc.get("route_config", {}).get("virtual_hosts", []))
               for c in json.loads(raw).get("configs", [])
               for rc in c.get("dynamic_route_configs", []))


def med(xs) -> float:
    return statistics.median(xs)


def measure(state: pathlib.Path, args, timeline: list[str], work: pathlib.Path) -> int:
    env = dict(os.environ, KUBECONFIG=str(state / "kubeconfig"),
               KUBECACHEDIR=str(state / "kubectl-cache"),
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    kubectl = str(BIN / "kubectl")
    pods = json.loads(subprocess.run([kubectl, "get", "pods", "-n", "istio-system", "-l",
                                      "istio=ingressgateway", "-o", "json"], env=env,
                                     capture_output=True, check=True).stdout)["items"]
    ip = pods[0]["status"]["podIP"]
    masked_url = f"http://{ip}:15000/config_dump?mask={MASK}"
    full_url = f"http://{ip}:15000/config_dump"
    vhosts = count_vhosts(masked_url)
    full_file, masked_file = work / "full.json", work / "routes.json"
    _, full_bytes = curl(full_url, str(full_file))
    _, masked_bytes = curl(masked_url, str(masked_file))

    routes_exe = str(BIN / "kubectl-mesh-routes")
    target = ["deploy/istio-ingressgateway", "-n", "istio-system"]
    # As users run it: bytecode compiled (pip does it at install; this machine sets
    # PYTHONDONTWRITEBYTECODE, so a checkout would otherwise recompile every module on every
    # run), and a regular (not editable) install, whose executables are first on PATH.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "kubectl_mesh")],
                   check=True, capture_output=True)
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(site), str(ROOT)], check=True, capture_output=True)
    installed_env = dict(env, PATH=f"{site / 'bin'}{os.pathsep}{env['PATH']}",
                         PYTHONPATH=str(site))
    # (a) parse + render from a file, both dumps, interleaved
    files = {"full": [], "masked": []}
    rows_out = {}
    for _ in range(args.runs):
        for kind, path in (("full", full_file), ("masked", masked_file)):
            t, rss, out = timed_rss([routes_exe, "--file", str(path)])
            files[kind].append((t, rss))
            rows_out[kind] = out.count(b"\n") - 1
    # (b) end to end vs the floor, interleaved round by round
    e2e = {k: [] for k in ("kubectl mesh routes", "kubectl-mesh-routes", "installed: kubectl",
                           "installed: direct", "curl", "pass")}
    for _ in range(args.runs):
        e2e["kubectl mesh routes"].append(run_child([kubectl, "mesh", "routes", *target], env))
        e2e["kubectl-mesh-routes"].append(run_child([routes_exe, *target], env))
        e2e["installed: kubectl"].append(run_child([kubectl, "mesh", "routes", *target],
                                                   installed_env))
        e2e["installed: direct"].append(run_child([str(site / "bin" / "kubectl-mesh-routes"),
                                                  *target], installed_env))
        e2e["curl"].append(curl(masked_url)[0])
        e2e["pass"].append(run_child([sys.executable, "-c", "pass"]))
    floor = [c + p for c, p in zip(e2e["curl"], e2e["pass"])]
    ratio = med(e2e["installed: kubectl"]) / med(floor)
    # (c) what `routes` itself fetched, counted by EnvoyAdmin in a child process
    probe = ("import sys; import kubectl_mesh.admin as a; seen = []\n"
             "init = a.EnvoyAdmin.close\n"
             "def close(self): seen.append(self.bytes_fetched); init(self)\n"
             "a.EnvoyAdmin.close = close\n"
             "from kubectl_mesh.cli.dispatch import run_command\n"
             "sys.argv = ['kubectl-mesh-routes'] + sys.argv[1:]; code = run_command('routes')\n"
             "print('BYTES', sum(seen), file=sys.stderr); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", probe, *target], env=env, capture_output=True,
                          text=True, cwd=ROOT)
    fetched = int(done.stderr.rsplit("BYTES", 1)[1].split()[0]) if "BYTES" in done.stderr else -1
    # where the time goes: a profile and the import bill of one end-to-end run
    # (in-process: the executables end with os._exit, before cProfile could write its file)
    prof, prof_script = work / "routes.prof", work / "routes_inprocess.py"
    prof_script.write_text(IN_PROCESS)
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), str(prof_script),
                    *target], env=env, capture_output=True, check=True, cwd=ROOT)
    # the fetch alone, without the rest of the command, for its own phases
    fetch_script, fetch_prof = work / "fetch_only.py", work / "fetch.prof"
    fetch_script.write_text(FETCH_ONLY)
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(fetch_prof), str(fetch_script)],
                   env=env, capture_output=True, check=True, cwd=ROOT)
    imports = subprocess.run([sys.executable, "-X", "importtime", routes_exe, *target],
                             env=env, capture_output=True, text=True, cwd=ROOT).stderr
    import_us = sum(int(line.split("|")[1]) for line in imports.splitlines()
                    if line.startswith("import time:") and "|" in line
                    and not line.split("|")[2].startswith("  ") and "cumulative" not in line)
    heavy = sorted({line.split("|")[2].strip().split(".")[0] for line in imports.splitlines()
                    if line.startswith("import time:") and line.split("|")[2].strip().split(".")[0]
                    in ("kubernetes", "requests", "yaml", "urllib3", "websocket", "tabulate")})

    command = (f".venv/bin/python benchmarks/routes_scale.py --vhosts {args.vhosts} "
               f"--runs {args.runs}")
    print(f"## routes at {args.vhosts} virtual hosts\n")
    print(f"`{command}` — sandbox from `python -m sandbox.generate --sidecars 0 --vhosts "
          f"{args.vhosts}`; gateway `{pods[0]['metadata']['name']}` ({ip}) holds **{vhosts} "
          f"virtual hosts**. Medians of {args.runs} runs, interleaved round by round; "
          f"{os.cpu_count()} CPUs.\n")
    if timeline:
        print("Sandbox start-up: " + "; ".join(timeline) + ".\n")
    print("(a) `kubectl-mesh-routes --file DUMP` (parse + render), wall time and the child's "
          "peak RSS (`wait4` rusage):\n")
    print("| dump | size MB | table rows | median s | min s | median max RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, path in (("full `/config_dump`", "full"), (f"masked `?mask={MASK}`", "masked")):
        ts = [t for t, _ in files[path]]
        size = (full_bytes if path == "full" else masked_bytes) / 1e6
        print(f"| {kind} | {size:.1f} | {rows_out[path]} | {med(ts):.3f} | {min(ts):.3f} | "
              f"{med([r for _, r in files[path]]) / 1024:.0f} |")
    print("\n(b) end to end vs the floor (floor = direct `curl` of the masked URL + "
          "`python -c pass`, measured in the same round):\n")
    print("| command | median s | min s | max s | × floor |")
    print("|---|---:|---:|---:|---:|")
    labels = {"kubectl mesh routes": f"kubectl mesh routes {' '.join(target)}` (checkout, "
                                     "editable .venv",
              "kubectl-mesh-routes": f"kubectl-mesh-routes {' '.join(target)}` (checkout",
              "installed: kubectl": f"kubectl mesh routes {' '.join(target)}` (pip install",
              "installed: direct": f"kubectl-mesh-routes {' '.join(target)}` (pip install",
              "curl": f"curl -s '{masked_url}'", "pass": "python -c pass"}
    for key, ts in list(e2e.items()) + [("floor", floor)]:
        label = labels.get(key, "floor (curl + python -c pass)")
        label = f"`{label})" if label.count("`") == 1 else f"`{label}`"
        print(f"| {label} | {med(ts):.3f} | {min(ts):.3f} | {max(ts):.3f} | "
              f"{med(ts) / med(floor):.2f}× |")
    verdict = "met" if ratio <= TARGET else "MISSED"
    direct = med(e2e["installed: direct"]) / med(floor)
    print(f"\nTarget ≤ {TARGET}× the floor, `kubectl mesh routes` as installed by pip: "
          f"**{verdict}** ({ratio:.2f}×; the executable alone, without kubectl: "
          f"{direct:.2f}×).\n")
    print(f"(c) bytes: `routes` fetched {fetched:,} bytes (counted by `EnvoyAdmin.bytes_fetched` "
          f"in a child run); the masked dump is {masked_bytes:,} bytes, the full `/config_dump` "
          f"{full_bytes:,} bytes: the mask saves {1 - masked_bytes / full_bytes:.0%}.\n")
    print(f"Imports of one end-to-end run (`python -X importtime`): {import_us / 1000:.0f} ms "
          f"in total; heavy packages imported: {', '.join(heavy) or 'none'}.\n")
    print(f"Where one end-to-end run's time goes (`python -m cProfile -o routes.prof "
          f"<run_command('routes')> {' '.join(target)}`; cumulative, phases overlap; profiling "
          f"inflates Python-heavy parts):\n")
    print("| phase | function | cumulative s |")
    print("|---|---|---:|")
    for label, func, seconds in phases(prof) + phases(fetch_prof, FETCH_PHASES, "fetch alone: "):
        print(f"| {label} | `{func}` | {seconds:.3f} |")
    return 0


# (label, file suffix, function name) of the phases worth naming in a profile
PHASES = [
    ("whole command", "cli/routes.py", "main"),
    ("all imports", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("kubeconfig + API client", "session.py", "open"),
    ("resolve the target (API GETs)", "session.py", "proxies"),
    ("resolve + port-forward + admin fetch (rendering imports overlap Envoy) + json parse",
     "proxyconfig/command.py", "fetch_dumps"),
    ("build the route table", "proxyconfig/views.py", "table"),
    ("render (tabulate)", "kubectl_mesh/output.py", "write"),
]


FETCH_PHASES = [
    ("open the port-forward", "kube/portforward.py", "open_forward"),
    ("admin GET + body read through it", "kubectl_mesh/admin.py", "_request"),
    ("json.loads of the masked dump", "json/__init__.py", "loads"),
]
# `kubectl-mesh-routes ARGS` returning normally (no os._exit), for cProfile.
IN_PROCESS = """
import sys
from kubectl_mesh.cli.dispatch import run_command
sys.argv = ["kubectl-mesh-routes"] + sys.argv[1:]
sys.exit(run_command("routes"))
"""
# The fetch `routes` does, in the main thread so cProfile sees it (target as in `target`).
FETCH_ONLY = """
from kubectl_mesh.cli.common import cluster_options
from kubectl_mesh.proxyconfig.views import MASKS
from kubectl_mesh.session import Session
import argparse
args = argparse.Namespace(kubeconfig=None, context=None, namespace="istio-system",
                          request_timeout=10.0, proxy_admin_port=15000)
with Session.open(cluster_options(args)) as session:
    pod = session.proxies("deploy/istio-ingressgateway")[0]
    with session.admin(pod) as admin:
        admin.config_dump(mask=MASKS["routes"])
"""


def phases(prof: pathlib.Path, wanted=None, prefix: str = "") -> list[tuple[str, str, float]]:
    import pstats

    stats = pstats.Stats(str(prof)).stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    out = []
    for label, suffix, func in wanted or PHASES:
        hits = [(k, v) for k, v in stats.items() if k[0].endswith(suffix) and k[2] == func]
        if hits:
            key, value = max(hits, key=lambda kv: kv[1][3])
            out.append((prefix + label, f"{pathlib.Path(key[0]).name}:{key[1]}({func})", value[3]))
    return out


def start(work: pathlib.Path, args, timeline: list[str]) -> pathlib.Path:
    from sandbox.testing import RunningSandbox

    scenario = work / f"gw{args.vhosts}.yaml"
    with open(scenario, "w") as f:
        subprocess.run([sys.executable, "-m", "sandbox.generate", "--sidecars", "0", "--vhosts",
                        str(args.vhosts)], stdout=f, check=True, cwd=ROOT)
    state = work / "state"
    sandbox = RunningSandbox(state, [scenario], timeout=args.up_timeout)
    started = time.monotonic()
    deadline = started + args.settle_timeout
    log(f"starting the sandbox in {state}")
    sandbox.up()
    timeline.append(f"`sandbox up --detach` returned after {time.monotonic() - started:.0f} s")
    ip = sandbox.wait_for(lambda: next((p["status"].get("podIP") for p in sandbox.pods(
        "istio-system", "istio=ingressgateway") if p["status"].get("podIP")), None),
        timeout=max(1.0, deadline - time.monotonic()), interval=2.0,
        what="the gateway pod")
    timeline.append(f"gateway pod running after {time.monotonic() - started:.0f} s")
    url = f"http://{ip}:15000/config_dump?mask={MASK}"
    sandbox.wait_for(lambda: count_vhosts(url) >= args.vhosts,
                     timeout=max(1.0, deadline - time.monotonic()), interval=5.0,
                     what=f"{args.vhosts} virtual hosts in the gateway")
    timeline.append(f"{args.vhosts} virtual hosts in its Envoy after "
                    f"{time.monotonic() - started:.0f} s")
    idle = wait_idle(state, deadline)
    timeline.append(f"sandbox idle (< 15 % of a core) after {time.monotonic() - started:.0f} s"
                    if idle is not None else
                    "**the sandbox was still busy at the settle timeout: numbers taken under load**")
    return state


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vhosts", type=int, default=5000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--state", type=pathlib.Path, help="reuse a running sandbox's state dir")
    p.add_argument("--up-timeout", type=float, default=300.0)
    p.add_argument("--settle-timeout", type=float, default=1200.0,
                   help="seconds to wait for the gateway's vhosts and an idle sandbox")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="bench-routes-") as tmp:
        work = pathlib.Path(tmp)
        if args.state:
            return measure(args.state.resolve(), args, [], work)
        timeline: list[str] = []
        state = work / "state"
        try:
            state = start(work, args, timeline)
            return measure(state, args, timeline, work)
        finally:
            pids = sandbox_pids(state) if (state / "status.json").exists() else []
            subprocess.run([sys.executable, "-m", "sandbox", "down", "--state", str(state)],
                           cwd=ROOT, capture_output=True, timeout=120)
            from sandbox.testing import pid_alive
            alive = [pid for pid in pids if pid_alive(pid)]
            log(f"sandbox down; processes left: {alive or 'none'}")
            shutil.rmtree(state / "pods", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
