"""`kubectl mesh` beside the real `istioctl` on real Istio, in one run, interleaved round by
round: `sync` vs `istioctl proxy-status` over all proxies, `sync POD --diff` vs `istioctl
proxy-status POD`, `routes` and `clusters` vs `istioctl proxy-config routes|clusters` on one
real sidecar, and start-up; ours as the executable alone and through kubectl's plugin exec.
Real istiod (pilot-discovery, a host process reached by `--xds-address`), the minimal
profile, N injected pods whose istio-proxy the sandbox kubelet runs as the real pilot-agent
and Envoy (docs/real-istio.md), and S Services besides, so each sidecar's outbound route
`80` holds S+1 virtual hosts. Prints markdown (benchmarks/sidebyside.py).

    .venv/bin/python benchmarks/real_istio_side_by_side.py [--proxies 10] [--services 500] [--runs 7]

`--hold FILE` measures nothing: once every proxy is SYNCED it writes shell exports
(KUBECONFIG, XDS=the --xds-address/--authority flags, POD) to FILE and keeps the mesh up
until FILE is removed, for profiling by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = pathlib.Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import yaml  # noqa: E402

from sandbox.real.controlplane import ControlPlane, locate_binaries  # noqa: E402
from sandbox.real.istio import UPSTREAM_ENVOY_ENV, UPSTREAM_ENVOY_VALUES, Istiod, install  # noqa: E402
from sandbox.real.istio.sidecar import kubelet_for  # noqa: E402
from sandbox.testing import kubectl_binary  # noqa: E402
from sidebyside import side_by_side  # noqa: E402

NS = "bench"


def objects(proxies: int, services: int) -> list[dict]:
    out: list[dict] = [{"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": NS, "labels": {"istio-injection": "enabled"}}}]
    for i in range(services):
        out.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": NS},
                    "spec": {"selector": {"app": f"svc-{i}"}, "ports": [{"name": "http", "port": 80}]}})
    labels = {"app": "bench"}
    out.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bench", "namespace": NS},
                "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 3000}]}})
    out.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench", "namespace": NS},
                "spec": {"replicas": proxies, "selector": {"matchLabels": labels},
                         # istio-proxy requests 100m CPU by default: the node offers the
                         # machine's 2 CPUs, so 20 sidecars at most; 10m lets 50+ schedule
                         "template": {"metadata": {"labels": labels, "annotations": {
                             "sidecar.istio.io/proxyCPU": "10m"}}, "spec": {"containers": [{
                             "name": "bench", "image": "docker.io/istioinaction/catalog:latest",
                             "ports": [{"containerPort": 3000}]}]}}}})
    return out


def kubectl(env, *args: str, input: str | None = None, timeout: float = 600) -> str:
    out = subprocess.run([kubectl_binary(), *args], env=env, input=input, capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args[:3])}: {out.stderr.strip()}")
    return out.stdout


def await_(what: str, predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise SystemExit(f"{what}: not after {timeout:.0f} s")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--proxies", type=int, default=10)
    p.add_argument("--services", type=int, default=500)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--hold", type=pathlib.Path, help="write exports here and keep the mesh up until it is removed")
    args = p.parse_args()
    # SIGTERM (benchmarks/run.py passes it on) unwinds the `with` blocks, so the control
    # plane and every pod process the kubelet started are stopped, not left behind.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    binaries = locate_binaries()
    istioctl = str(binaries / "istioctl")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "kubectl_mesh")],
                   check=True, capture_output=True)
    timeline: list[str] = []
    started = time.monotonic()

    def mark(what: str) -> None:
        timeline.append(f"{what} {time.monotonic() - started:.1f} s")

    with tempfile.TemporaryDirectory() as tmp, ControlPlane(pathlib.Path(tmp) / "state") as cp:
        mark("control plane")
        istiod = Istiod(cp, binaries=binaries, env=UPSTREAM_ENVOY_ENV)
        install(cp, binaries / "istioctl", istiod.address, extra=UPSTREAM_ENVOY_VALUES)
        with istiod, kubelet_for(cp, istiod, binaries=binaries):
            mark("istiod")
            env = dict(os.environ, KUBECONFIG=str(cp.kubeconfig),
                       PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
            await_("the injector's caBundle", lambda: all(
                w["clientConfig"].get("caBundle") for w in json.loads(kubectl(
                    env, "get", "mutatingwebhookconfiguration", "istio-sidecar-injector",
                    "-o", "json"))["webhooks"]), 120)
            kubectl(env, "apply", "--server-side", "-f", "-",
                    input=yaml.safe_dump_all(objects(args.proxies, args.services)))
            await_("the Deployment's pods", lambda: len(kubectl(
                env, "get", "pods", "-n", NS, "-o", "name").split()) == args.proxies, 300)
            kubectl(env, "wait", "-n", NS, "--for=condition=Ready", "pod", "--all", "--timeout=900s")
            mark(f"{args.proxies} sidecars Ready")
            xds = ["--xds-address", istiod.hostport("secure_grpc"), "--authority", istiod.address]
            out = subprocess.run([kubectl_binary(), "mesh", "sync", *xds, "--wait", "--timeout", "600s"],
                                 env=env, capture_output=True, text=True, timeout=900)
            if out.returncode != 0:
                raise SystemExit(f"sync --wait: {out.stderr.strip()}")
            mark("every proxy SYNCED")
            pod = kubectl(env, "get", "pods", "-n", NS, "-o", "jsonpath={.items[0].metadata.name}")
            target = f"{pod}.{NS}"
            if args.hold:
                return hold(args.hold, cp, xds, target)
            rows = kubectl(env, "mesh", "routes", target, "--name", "80").splitlines()[1:]
            return measure(env, istioctl, xds, target, args, len(rows), timeline)


def hold(path: pathlib.Path, cp, xds: list[str], target: str) -> int:
    path.write_text(f"export KUBECONFIG={cp.kubeconfig}\nexport XDS='{' '.join(xds)}'\n"
                    f"export POD={target}\n")
    while path.exists():
        time.sleep(1)
    return 0


def measure(env, istioctl, xds, target, args, vhosts: int, timeline: list[str]) -> int:
    k = kubectl_binary()
    pod, ns = target.split(".", 1)
    cases = {
        "sync, all proxies": {
            "istioctl proxy-status": [istioctl, "proxy-status", *xds],
            "kubectl-mesh-sync": [str(BIN / "kubectl-mesh-sync"), *xds],
            "kubectl mesh sync": [k, "mesh", "sync", *xds],
        },
        # istiod's config for one proxy against its Envoy's (both: XDS debug config_dump +
        # the admin port through the API server's port-forward)
        "sync diff of one sidecar": {
            "istioctl proxy-status POD": [istioctl, "proxy-status", target, *xds],
            "kubectl-mesh-sync POD --diff": [str(BIN / "kubectl-mesh-sync"), pod, "-n", ns, "--diff", *xds],
            "kubectl mesh sync POD --diff": [k, "mesh", "sync", pod, "-n", ns, "--diff", *xds],
        },
        "routes of one sidecar": {
            "istioctl proxy-config routes": [istioctl, "proxy-config", "routes", target],
            "kubectl-mesh-routes": [str(BIN / "kubectl-mesh-routes"), target],
            "kubectl mesh routes": [k, "mesh", "routes", target],
        },
        "clusters of one sidecar": {
            "istioctl proxy-config clusters": [istioctl, "proxy-config", "clusters", target],
            "kubectl-mesh-clusters": [str(BIN / "kubectl-mesh-clusters"), target],
            "kubectl mesh clusters": [k, "mesh", "clusters", target],
        },
        "start-up": {
            "istioctl version --remote=false": [istioctl, "version", "--remote=false"],
            "kubectl-mesh-routes --help": [str(BIN / "kubectl-mesh-routes"), "--help"],
            "kubectl mesh routes --help": [k, "mesh", "routes", "--help"],
        },
    }
    result = side_by_side(cases, env, args.runs)
    print(f"{args.runs} interleaved runs; {args.proxies} real sidecars (pilot-agent + Envoy), "
          f"{args.services} extra Services: {vhosts} virtual hosts in the sidecar's route `80`; "
          f"load average {os.getloadavg()[0]:.1f}; set-up: {', '.join(timeline)}\n")
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
