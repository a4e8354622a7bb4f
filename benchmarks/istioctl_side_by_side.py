"""`kubectl mesh` beside the real `istioctl` (built by `make real-components`) on the same
sandbox, in one run, interleaved round by round: routes of the ingress gateway (optionally
holding N virtual hosts), the gateway's sync diff (`proxy-status POD` / `sync --diff`, both
over XDS), clusters of one sidecar, and start-up of each. Ours is timed as the
executable alone and through kubectl's plugin exec (`kubectl mesh ...`). Prints markdown.

    .venv/bin/python benchmarks/istioctl_side_by_side.py [--vhosts 5000] [--runs 7]

The backend is the API double (the real-Kubernetes backend has no kubelet yet); both tools
reach the proxy's admin port through its port-forward the same way (istioctl over SPDY/
WebSocket through client-go, ours over WebSocket).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = pathlib.Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from routes_scale import start  # noqa: E402
from sandbox.real.controlplane import locate_binaries  # noqa: E402
from sandbox.testing import RunningSandbox, kubectl_binary  # noqa: E402
from sidebyside import before_tree, side_by_side, with_before  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--vhosts", type=int, default=0, help="gateway virtual hosts (0: default scenario)")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--up-timeout", type=float, default=600.0)
    p.add_argument("--settle-timeout", type=float, default=1800.0)
    p.add_argument("--before", metavar="REV",
                   help="also ours as at this git revision (PYTHONPATH), interleaved")
    args = p.parse_args()
    istioctl = str(locate_binaries() / "istioctl")
    # As users run it: bytecode compiled (pip does it at install; these machines set
    # PYTHONDONTWRITEBYTECODE, so a checkout would recompile every module on every run).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "kubectl_mesh")],
                   check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        if args.vhosts:
            timeline: list[str] = []
            state = start(work, args, timeline)
            sandbox = RunningSandbox(state)
        else:
            sandbox = RunningSandbox(work / "state").up()
        try:
            return measure(sandbox, istioctl, args)
        finally:
            sandbox.down()


def measure(sandbox: RunningSandbox, istioctl: str, args) -> int:
    env = sandbox.env(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    gateway = sandbox.pods("istio-system", "istio=ingressgateway")[0]["metadata"]["name"]
    sidecar = next(p["metadata"]["name"] for p in sandbox.pods("istioinaction")
                   if any(c["name"] == "istio-proxy"  # a native sidecar: an init container
                          for c in p["spec"]["containers"] + p["spec"].get("initContainers", []))) \
        if not args.vhosts else None
    cases = {
        "routes of the gateway": {
            "istioctl proxy-config routes": [istioctl, "proxy-config", "routes", gateway, "-n", "istio-system"],
            "kubectl-mesh-routes": [str(BIN / "kubectl-mesh-routes"), gateway, "-n", "istio-system"],
            "kubectl mesh routes": [kubectl_binary(), "mesh", "routes", gateway, "-n", "istio-system"],
        },
        # istiod's view of the gateway against its Envoy's: both over XDS (the debug type
        # istio.io/debug/config_dump on 15012, TLS + token) and the admin port-forward
        "sync diff of the gateway": {
            "istioctl proxy-status POD": [istioctl, "proxy-status", f"{gateway}.istio-system"],
            "kubectl-mesh-sync --diff": [str(BIN / "kubectl-mesh-sync"), gateway, "-n", "istio-system", "--diff"],
            "kubectl mesh sync --diff": [kubectl_binary(), "mesh", "sync", gateway, "-n", "istio-system", "--diff"],
        },
        "start-up": {
            "istioctl version --remote=false": [istioctl, "version", "--remote=false"],
            "kubectl-mesh-routes --help": [str(BIN / "kubectl-mesh-routes"), "--help"],
            "kubectl mesh routes --help": [kubectl_binary(), "mesh", "routes", "--help"],
            # kubectl's own start-up, paid before `kubectl mesh ...` runs ours
            "kubectl version --client": [kubectl_binary(), "version", "--client"],
        },
    }
    if sidecar:
        cases["clusters of one sidecar"] = {
            "istioctl proxy-config clusters": [istioctl, "proxy-config", "clusters", sidecar, "-n", "istioinaction"],
            "kubectl-mesh-clusters": [str(BIN / "kubectl-mesh-clusters"), sidecar, "-n", "istioinaction"],
            "kubectl mesh clusters": [kubectl_binary(), "mesh", "clusters", sidecar, "-n", "istioinaction"],
        }
    with before_tree(args.before) as tree:
        result = side_by_side(with_before(cases, tree, args.before), env, args.runs)
    print(f"{args.runs} interleaved runs, gateway with "
          f"{args.vhosts or 'the default scenario'}'s virtual hosts; load average "
          f"{os.getloadavg()[0]:.1f}\n")
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
