"""`kubectl mesh` beside the real `istioctl` on real Istio, in one run, interleaved round by
round: `sync` vs `istioctl proxy-status` over all proxies, `sync POD --diff` vs `istioctl
proxy-status POD`, `routes` and `clusters` vs `istioctl proxy-config routes|clusters` on one
real sidecar, `routes` of an ingress gateway with G virtual hosts, and start-up; ours as the
executable alone and through kubectl's plugin exec. Real istiod (pilot-discovery, a host
process reached by `--xds-address`), the minimal profile, N injected pods whose istio-proxy
the sandbox kubelet runs as the real pilot-agent and Envoy (docs/real-istio.md), each pod in
a network namespace of its own, and S Services besides, so each sidecar's outbound route
`80` holds S+1 virtual hosts. With `--gateway-vhosts G` also an ingress gateway run as
`pilot-agent proxy router` (deployed as tests/real/test_real_istio_chapter10.py deploys it)
and, in namespace `gw`, G hosts on its port 80, each bound by a VirtualService to a Service
of its own (`sandbox.generate`'s `--vhosts` shape; the Services headless), so the gateway's
port-80 route holds G virtual hosts without G pods; a `Sidecar` in `bench` keeps the
sidecars' config to `bench` and `istio-system` (their route `80` stays at S+1). Prints
markdown (benchmarks/sidebyside.py).

    .venv/bin/python benchmarks/real_istio_side_by_side.py [--proxies 10] [--services 500] \
        [--gateway-vhosts 5000] [--runs 7]

`--hold FILE` measures nothing: once every proxy is SYNCED it writes shell exports
(KUBECONFIG, XDS=the --xds-address/--authority flags, POD) to FILE and keeps the mesh up
until FILE is removed, for profiling by hand; `--on FILE` measures on the mesh such a run
holds (give the same --proxies/--services/--gateway-vhosts, which only label the table).
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
from sandbox.generate import scenario  # noqa: E402
from sandbox.real.istio.sidecar import kubelet_for, pod_side_istiod  # noqa: E402
from sandbox.testing import kubectl_binary  # noqa: E402
from sidebyside import before_tree, side_by_side, with_before  # noqa: E402

NS = "bench"
GW_NS = "gw"


def gateway_objects(vhosts: int) -> list[dict]:
    """The chapter-10 test's ingress gateway (gateway injection, `proxy router`) and, in
    namespace `gw`, `sandbox.generate`'s Gateway with `vhosts` hosts, one VirtualService and
    one Service per host; plus a `Sidecar` in `bench` so that the sidecars there get only
    `bench`'s and istio-system's services (networking/v1 Sidecar `egress.hosts`)."""
    from tests.real.test_real_istio_chapter10 import GATEWAY
    generated = [d for d in scenario(0, vhosts, namespace=GW_NS)
                 if (d.get("metadata") or {}).get("namespace") == GW_NS
                 or (d["kind"] == "Namespace" and d["metadata"]["name"] == GW_NS)]
    for d in generated:
        # headless: no ClusterIP to allocate (the API server allocates them one at a time:
        # ~80 Services a minute on this machine under load); the gateway's virtual hosts are
        # the same, each routing to the Service's outbound|80|| cluster
        if d["kind"] == "Service":
            d["spec"]["clusterIP"] = "None"
    sidecar = {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
               "metadata": {"name": "default", "namespace": NS},
               "spec": {"egress": [{"hosts": ["./*", "istio-system/*"]}]}}
    return [*GATEWAY, sidecar, *generated]


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


def apply(env, docs: list[dict], streams: int = 6) -> None:
    """Namespaces first, then configuration in `streams` kubectl applies at once (one
    `kubectl apply` sends one request per object, one after the other: 12,000 objects took
    over 10 minutes so), then the workloads, so no proxy is pushed every step of it."""
    workloads = ("Deployment", "ServiceAccount")
    first = [d for d in docs if d["kind"] == "Namespace"]
    last = [d for d in docs if d["kind"] in workloads]
    middle = [d for d in docs if d["kind"] != "Namespace" and d["kind"] not in workloads]
    kubectl(env, "apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(first))
    running = [subprocess.Popen([kubectl_binary(), "apply", "--server-side", "-f", "-"], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
               for _ in range(streams)]
    try:
        for i, child in enumerate(running):
            child.stdin.write(yaml.safe_dump_all(middle[i::streams]))
            child.stdin.close()
        for child in running:
            if child.wait(timeout=1800) != 0:
                raise SystemExit(f"kubectl apply: {child.stderr.read().strip()}")
    finally:
        for child in running:
            if child.poll() is None:
                child.kill()
                child.wait()
    kubectl(env, "apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(last))


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
    p.add_argument("--gateway-vhosts", type=int, default=0,
                   help="also an ingress gateway with this many virtual hosts (0: none)")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--hold", type=pathlib.Path, help="write exports here and keep the mesh up until it is removed")
    p.add_argument("--on", type=pathlib.Path, help="measure on the mesh whose --hold exports are here")
    p.add_argument("--before", metavar="REV",
                   help="also ours as at this git revision (PYTHONPATH), interleaved")
    args = p.parse_args()
    if args.on:
        return measure_on(args)
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
        # pods in network namespaces of their own reach the host istiod through the bridge
        # (as tests/real/test_real_istio_chapter10.py runs them)
        istiod = Istiod(cp, binaries=binaries, env=UPSTREAM_ENVOY_ENV,
                        hosts=(pod_side_istiod(cp).rsplit(":", 1)[0],))
        install(cp, binaries / "istioctl", istiod.address, extra=UPSTREAM_ENVOY_VALUES)
        with istiod, kubelet_for(cp, istiod, binaries=binaries, pod_network="netns"):
            mark("istiod")
            env = dict(os.environ, KUBECONFIG=str(cp.kubeconfig),
                       PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
            await_("the injector's caBundle", lambda: all(
                w["clientConfig"].get("caBundle") for w in json.loads(kubectl(
                    env, "get", "mutatingwebhookconfiguration", "istio-sidecar-injector",
                    "-o", "json"))["webhooks"]), 120)
            docs = objects(args.proxies, args.services)
            if args.gateway_vhosts:
                docs += gateway_objects(args.gateway_vhosts)
            apply(env, docs)
            await_("the Deployment's pods", lambda: len(kubectl(
                env, "get", "pods", "-n", NS, "-o", "name").split()) == args.proxies, 300)
            namespaces = [NS] + (["istio-system"] if args.gateway_vhosts else [])
            if args.gateway_vhosts:
                await_("the gateway's pod", lambda: kubectl(
                    env, "get", "pods", "-n", "istio-system", "-l", "istio=ingressgateway",
                    "-o", "name").strip(), 300)
            for ns in namespaces:
                kubectl(env, "wait", "-n", ns, "--for=condition=Ready", "pod", "--all",
                        "--timeout=900s")
            mark(f"{args.proxies} sidecars{' and the gateway' if args.gateway_vhosts else ''} Ready")
            xds = ["--xds-address", istiod.hostport("secure_grpc"), "--authority", istiod.address]
            out = subprocess.run([kubectl_binary(), "mesh", "sync", *xds, "--wait", "--timeout", "600s"],
                                 env=env, capture_output=True, text=True, timeout=900)
            if out.returncode != 0:
                raise SystemExit(f"sync --wait: {out.stderr.strip()}")
            mark("every proxy SYNCED")
            pod = kubectl(env, "get", "pods", "-n", NS, "-o", "jsonpath={.items[0].metadata.name}")
            target = f"{pod}.{NS}"
            gateway = None
            if args.gateway_vhosts:
                gateway = kubectl(env, "get", "pods", "-n", "istio-system", "-l",
                                  "istio=ingressgateway",
                                  "-o", "jsonpath={.items[0].metadata.name}") + ".istio-system"
                # istiod has pushed the gateway its G virtual hosts (SYNCED can come before
                # the VirtualServices are all in istiod's cache)
                await_(f"{args.gateway_vhosts} virtual hosts at the gateway", lambda: len(kubectl(
                    env, "mesh", "routes", gateway).splitlines()) - 1
                    >= args.gateway_vhosts, 600)
                mark(f"{args.gateway_vhosts} virtual hosts at the gateway")
            if args.hold:
                return hold(args.hold, cp, xds, target, gateway)
            rows = kubectl(env, "mesh", "routes", target, "--name", "80").splitlines()[1:]
            return measure(env, istioctl, xds, target, gateway, args, len(rows), timeline)


def hold(path: pathlib.Path, cp, xds: list[str], target: str, gateway: str | None) -> int:
    path.write_text(f"export KUBECONFIG={cp.kubeconfig}\nexport XDS='{' '.join(xds)}'\n"
                    f"export POD={target}\nexport GATEWAY={gateway or ''}\n")
    while path.exists():
        time.sleep(1)
    return 0


def measure_on(args) -> int:
    exports = dict(line.removeprefix("export ").split("=", 1)
                   for line in args.on.read_text().splitlines())
    env = dict(os.environ, KUBECONFIG=exports["KUBECONFIG"],
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    xds = exports["XDS"].strip("'").split()
    target, gateway = exports["POD"], exports.get("GATEWAY") or None
    rows = kubectl(env, "mesh", "routes", target, "--name", "80").splitlines()[1:]
    return measure(env, str(locate_binaries() / "istioctl"), xds, target, gateway, args, len(rows),
                   [f"held mesh ({args.on})"])


def measure(env, istioctl, xds, target, gateway, args, vhosts: int, timeline: list[str]) -> int:
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
        **({f"routes of the gateway, {args.gateway_vhosts} vhosts": {
            "istioctl proxy-config routes": [istioctl, "proxy-config", "routes", gateway],
            "kubectl-mesh-routes": [str(BIN / "kubectl-mesh-routes"), gateway],
            "kubectl mesh routes": [k, "mesh", "routes", gateway],
        }} if gateway else {}),
        "start-up": {
            "istioctl version --remote=false": [istioctl, "version", "--remote=false"],
            "kubectl-mesh-routes --help": [str(BIN / "kubectl-mesh-routes"), "--help"],
            "kubectl mesh routes --help": [k, "mesh", "routes", "--help"],
            # kubectl's own start-up, paid before `kubectl mesh ...` runs ours
            "kubectl version --client": [k, "version", "--client"],
        },
    }
    with before_tree(args.before) as tree:
        result = side_by_side(with_before(cases, tree, args.before), env, args.runs)
    print(f"{args.runs} interleaved runs; {args.proxies} real sidecars (pilot-agent + Envoy), "
          f"{args.services} extra Services: {vhosts} virtual hosts in the sidecar's route `80`; "
          + (f"an ingress gateway with {args.gateway_vhosts} virtual hosts; " if gateway else "") +
          f"load average {os.getloadavg()[0]:.1f}; set-up: {', '.join(timeline)}\n")
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
