"""`python -m sandbox up|down|status`: run the local mesh."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import select
import signal
import subprocess
import sys
import threading
import time

from .credentials import private_dir
from .real.kubelet.podnetwork import (DEFAULT_POD_NETWORK, POD_NETWORK_ENV, POD_NETWORKS,
                                      PodNetworkError, default_pod_network)

DEFAULT_STATE = pathlib.Path(".state/sandbox")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cmd_up(args) -> int:
    from .cluster import DEFAULT_SCENARIO, Sandbox, ScenarioError
    state = args.state.resolve()
    pid_file = state / "sandbox.pid"
    if pid_file.exists() and _pid_alive(int(pid_file.read_text() or 0)):
        print(f"error: a sandbox is already running for {state} (pid {pid_file.read_text()}); "
              f"run: python -m sandbox down --state {args.state}", file=sys.stderr)
        return 1
    from .samples import SampleError, resolve_scenario
    try:
        scenarios = [resolve_scenario(s, state) for s in args.scenario] or [DEFAULT_SCENARIO]
    except SampleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in scenarios:
        if not s.is_file():
            print(f"error: scenario file {s} not found", file=sys.stderr)
            return 2
    if args.istio == "real" and args.backend != "real":
        print("error: --istio real needs --backend real (real Istio runs on the real control "
              "plane; the API double has only the sandbox istiod)", file=sys.stderr)
        return 2
    if args.istio == "real" and (os.geteuid() != 0 or args.pod_network != "netns"):
        print("error: --istio real needs root and --pod-network netns (istiod's pod and the "
              "sidecars' iptables need a network namespace each); run as root, or use "
              "--istio sandbox", file=sys.stderr)
        return 2
    if args.detach:
        return _up_detached(args, state, scenarios)
    private_dir(state)  # it holds the kubeconfig and the token table
    (state / "ready").unlink(missing_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: stop.set())
    if args.owner:
        _stop_when_gone(args.owner, stop)
    if args.backend == "real":
        from .real.cluster import RealSandbox
        sandbox = RealSandbox(state, scenarios, verbose=args.verbose,
                              pod_network=args.pod_network, istio=args.istio)
    else:
        sandbox = Sandbox(state, scenarios, verbose=args.verbose)
    pid_file.write_text(str(os.getpid()))
    try:
        from .real.controlplane import ControlPlaneError
        try:
            sandbox.start()
        except ScenarioError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except ControlPlaneError as e:
            print(f"error: the real control plane did not start: {e}", file=sys.stderr)
            return 1
        except PodNetworkError as e:
            print(f"error: the pod network could not be made: {e} (`--pod-network netns` "
                  "needs root, ip and iptables; or use --pod-network loopback)", file=sys.stderr)
            return 1
        except (OSError, ValueError) as e:  # a component that stopped answering, say
            print(f"error: the sandbox did not start: {e}; logs in {state}", file=sys.stderr)
            return 1
        print(sandbox.kubeconfig_path, flush=True)
        if not args.no_wait:
            missing = sandbox.wait_ready(args.timeout, stop)
            if missing and not stop.is_set():
                print(f"warning: pods not ready after {args.timeout:.0f}s: {', '.join(missing)}",
                      file=sys.stderr, flush=True)
        if not stop.is_set():
            (state / "ready").write_text(str(os.getpid()))
        stop.wait()
    finally:
        sandbox.stop() if hasattr(sandbox, "runtime") else None
        (state / "ready").unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
    return 0


def _stop_when_gone(owner: int, stop: threading.Event) -> None:
    """Set `stop` when process `owner` ends, however it ends (kill -9, a test runner's time
    limit): a sandbox started for a test or benchmark never outlives it. A pidfd names that
    very process, so a reused pid cannot keep the sandbox alive."""
    try:
        fd = os.pidfd_open(owner)
    except ProcessLookupError:
        stop.set()
        return

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not stop.is_set():
            if poller.poll(500):
                print(f"owner process {owner} ended: stopping", file=sys.stderr, flush=True)
                stop.set()
        os.close(fd)

    threading.Thread(target=watch, daemon=True, name="owner-watch").start()


def _up_detached(args, state: pathlib.Path, scenarios) -> int:
    private_dir(state)  # it holds the kubeconfig and the token table
    (state / "ready").unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "sandbox", "up", "--state", str(state),
           "--timeout", str(args.timeout), "--backend", args.backend,
           "--pod-network", args.pod_network, "--istio", args.istio] + [a for s in scenarios for a in ("--scenario", str(s))]
    if args.owner:
        cmd += ["--owner", str(args.owner)]
    log = open(state / "sandbox.log", "ab")
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parent.parent))
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True, env=env)
    # the real backend's control plane (and real Istio's install and istiod) start before the
    # pods' timeout begins
    deadline = time.monotonic() + args.timeout + {"double": 15, "real": 105}[args.backend] + (
        120 if args.istio == "real" else 0)
    while time.monotonic() < deadline:
        if (state / "ready").exists():
            print(state / "kubeconfig")
            return 0
        if child.poll() is not None:
            print(f"error: the sandbox exited with code {child.returncode}; see {state / 'sandbox.log'}",
                  file=sys.stderr)
            return 1
        time.sleep(0.1)
    child.terminate()
    print(f"error: the sandbox did not become ready; see {state / 'sandbox.log'}", file=sys.stderr)
    return 1


def cmd_down(args) -> int:
    state = args.state.resolve()
    pid_file = state / "sandbox.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() and pid_file.read_text().strip() else None
    if pid and _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    # If the supervisor died without cleaning up, its children are still listed here.
    leftovers = 0
    status = state / "status.json"
    if status.exists():
        for pod in json.loads(status.read_text() or "[]"):
            for c in pod.get("containers", []):
                if c.get("pid") and _pid_alive(c["pid"]):
                    try:
                        os.killpg(c["pid"], signal.SIGKILL)
                        leftovers += 1
                    except (ProcessLookupError, PermissionError):
                        pass
        status.write_text("[]")
    from .cgroups import remove_recorded
    remove_recorded(state)  # the container cgroups a killed supervisor could not remove
    from .real.kubelet.podnetwork import cleanup_recorded
    cleanup_recorded(state)  # the pods' namespaces, links and rules a killed one left
    pid_file.unlink(missing_ok=True)
    if pid is None and not leftovers:
        print(f"no sandbox running for {state}", file=sys.stderr)
    return 0


def cmd_status(args) -> int:
    state = args.state.resolve()
    status = state / "status.json"
    pid_file = state / "sandbox.pid"
    if not pid_file.exists() or not _pid_alive(int(pid_file.read_text() or 0)):
        print(f"error: no sandbox running for {state}", file=sys.stderr)
        return 1
    pods = json.loads(status.read_text()) if status.exists() else []
    if args.output == "json":
        print(json.dumps(pods, indent=2))
        return 0
    print(f"{'NAMESPACE':<16}{'NAME':<44}{'POD IP':<14}CONTAINERS (pid)")
    for p in pods:
        containers = ", ".join(f"{c['name']}({c['pid']})" for c in p["containers"])
        print(f"{p['namespace']:<16}{p['name']:<44}{p['podIP']:<14}{containers}")
    return 0


def cmd_rtt(args) -> int:
    from sandbox.apiserver.latency import parse_rtt, write_rtt

    try:
        seconds = parse_rtt(args.value)
    except ValueError:
        print(f"error: not a round-trip time: {args.value!r} (e.g. 20ms, 0.02s, 0)",
              file=sys.stderr)
        return 2
    if not args.state.is_dir():
        print(f"error: no sandbox state in {args.state} (start one with `up`)", file=sys.stderr)
        return 1
    write_rtt(args.state, seconds)
    print(f"API round-trip time {seconds * 1000:g} ms", flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the sandbox and run until SIGINT/SIGTERM")
    up.add_argument("--scenario", action="append", default=[],
                    help="scenario YAML, or `bookinfo` (Istio's sample, from the Istio module) "
                         "(repeatable; default: the bundled default scenario)")
    up.add_argument("--state", type=pathlib.Path, default=DEFAULT_STATE)
    up.add_argument("--detach", action="store_true", help="run in the background; stop with `down`")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for pods to be Ready")
    up.add_argument("--backend", choices=("double", "real"), default="double",
                    help="double: the Python API double (fast); real: etcd, kube-apiserver, "
                         "controller manager and scheduler built by `make real-components`, "
                         "the sandbox as the node's kubelet")
    up.add_argument("--istio", choices=("sandbox", "real"), default="sandbox",
                    help="the real backend's Istio: sandbox (the scenario's istiod run as the "
                         "sandbox istiod) or real (istioctl install's minimal profile, istiod a "
                         "pod of the real pilot-discovery, sidecars and gateways real pilot-agent "
                         "and Envoy with istio-init's iptables; needs root and netns)")
    up.add_argument("--pod-network", choices=POD_NETWORKS,
                    default=default_pod_network(),
                    help="the real backend's pods: netns (a network namespace each, on a "
                         "bridge; needs root, ip and iptables) or loopback (an address each "
                         f"in the host's namespace); default ${POD_NETWORK_ENV}, else "
                         f"{DEFAULT_POD_NETWORK} as root, loopback otherwise")
    up.add_argument("--no-wait", action="store_true")
    up.add_argument("--verbose", action="store_true")
    up.add_argument("--owner", type=int, metavar="PID",
                    help="stop (as `down` would) when process PID ends; tests and benchmarks "
                         "pass their own pid")
    down = sub.add_parser("down", help="stop a detached sandbox and every process it started")
    down.add_argument("--state", type=pathlib.Path, default=DEFAULT_STATE)
    st = sub.add_parser("status", help="list pods, their IPs and container process ids")
    st.add_argument("--state", type=pathlib.Path, default=DEFAULT_STATE)
    st.add_argument("-o", "--output", choices=("table", "json"), default="table")
    rtt = sub.add_parser("rtt", help="model a remote API server: impose this round-trip time "
                         "(e.g. 20ms; 0 = none) on connections, requests and port-forwards")
    rtt.add_argument("value")
    rtt.add_argument("--state", type=pathlib.Path, default=DEFAULT_STATE)
    args = parser.parse_args(argv)
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status,
            "rtt": cmd_rtt}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
