"""`make demo`: start the sandbox's default scenario, walk the classic troubleshooting case with
`kubectl mesh ...` through real kubectl, and stop everything again (on every exit path).

The case: requests to catalog.istioinaction.io through the ingress gateway fail with 503,
because a VirtualService routes to subsets no DestinationRule defines.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from .testing import SCENARIOS, RunningSandbox, kubectl_binary

BIN = pathlib.Path(sys.executable).parent
GATEWAY = ("deploy/istio-ingressgateway", "-n", "istio-system")


class Demo:
    def __init__(self, sb: RunningSandbox, pause: float):
        self.sb = sb
        self.pause = pause
        self.env = sb.env()
        self.env["PATH"] = f"{BIN}{os.pathsep}{self.env.get('PATH', '')}"

    def say(self, text: str) -> None:
        print(f"\n\033[1m# {text}\033[0m" if sys.stdout.isatty() else f"\n# {text}", flush=True)
        time.sleep(self.pause)

    def run(self, *args: str) -> int:
        shown = " ".join(shlex.quote(a) for a in ("kubectl", *args))
        print(f"$ {shown}", flush=True)
        return subprocess.run([kubectl_binary(), *args], env=self.env).returncode

    def curl(self, n: int = 5) -> None:
        ip = self.sb.pod_ip("istio-system", "app=istio-ingressgateway")
        print(f"$ for i in $(seq {n}); do curl -s -o /dev/null -w '%{{http_code}} ' "
              f"-H 'Host: catalog.istioinaction.io' http://{ip}:8080/items; done", flush=True)
        codes = []
        for _ in range(n):
            req = urllib.request.Request(f"http://{ip}:8080/items",
                                         headers={"Host": "catalog.istioinaction.io"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    codes.append(str(r.status))
            except urllib.error.HTTPError as e:
                codes.append(str(e.code))
        print(" ".join(codes), flush=True)


def walk(demo: Demo) -> None:
    demo.say("The mesh: a gateway, istiod, catalog v1 (1 pod) and v2 (2 pods), all with real Envoys")
    demo.run("get", "pods", "-A", "-o", "wide")
    demo.say("Requests through the gateway fail")
    demo.curl()
    demo.say("What does the gateway route catalog.istioinaction.io to?")
    demo.run("mesh", "routes", *GATEWAY)
    demo.run("mesh", "routes", *GATEWAY, "-o", "wide")
    demo.say("Do the subset clusters the route points to exist?")
    demo.run("mesh", "clusters", *GATEWAY, "--fqdn", "catalog.istioinaction.svc.cluster.local")
    demo.say("The same walk in one command: trace the failing request through the gateway")
    demo.run("mesh", "routes", *GATEWAY, "--trace", "http://catalog.istioinaction.io/items")
    demo.say("The configuration says the same before any proxy is asked (istioctl analyze's IST0101)")
    demo.run("mesh", "analyze", "-n", "istioinaction")
    demo.say("No DestinationRule defines the subsets. Check the fix before applying it")
    demo.run("mesh", "analyze", str(SCENARIOS / "catalog-destinationrule.yaml"), "-n",
             "istioinaction")
    demo.say("Apply it")
    demo.run("apply", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"))
    demo.say("Wait until every proxy has ACKed it (what a CI pipeline runs after kubectl apply)")
    demo.run("mesh", "sync", "--wait", "--timeout", "30s")
    demo.run("mesh", "clusters", *GATEWAY, "--fqdn", "catalog.istioinaction.svc.cluster.local")
    demo.run("mesh", "endpoints", *GATEWAY, "--cluster",
             "outbound|80|version-v2|catalog.istioinaction.svc.cluster.local")
    demo.say("Requests succeed now")
    demo.run("mesh", "routes", *GATEWAY, "--trace", "http://catalog.istioinaction.io/items")
    demo.curl()
    demo.say("Raise the gateway's http logger for 3 seconds; the previous levels come back")
    demo.run("mesh", "loglevel", *GATEWAY, "--level", "http:debug", "--for", "3s")
    demo.say("Every replica of catalog-v2 has the same config")
    demo.run("mesh", "clusters", "deploy/catalog-v2", "-n", "istioinaction", "--all-pods",
             "--fqdn", "catalog")
    demo.say("And every proxy's own Envoy agrees with istiod (the gateway keeps the stats this "
             "reads; the catalog sidecars keep Istio's defaults, and it says what it cannot check)")
    demo.run("mesh", "sync", "--verify")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.demo", description=__doc__)
    p.add_argument("--pause", type=float, default=0.0, help="seconds to pause between steps")
    p.add_argument("--backend", choices=("double", "real", "istio"), default="double",
                   help="real: etcd, kube-apiserver, controller manager and scheduler (`make "
                        "real-components`) with the sandbox as the node's kubelet; istio: "
                        "the same with real Istio (istiod a pod; needs root)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kubectl-mesh-demo-") as tmp:
        what = {"double": "a Kubernetes API double",
                "real": "a real kube-apiserver, controllers and scheduler",
                "istio": "a real kube-apiserver, controllers and scheduler, real Istio "
                         "installed as istioctl install does"}[args.backend]
        print(f"# Starting the sandbox ({what}, istiod and real Envoys)...", flush=True)
        started = time.monotonic()
        with RunningSandbox(pathlib.Path(tmp) / "state", backend=args.backend) as sb:
            print(f"# Up in {time.monotonic() - started:.1f}s; KUBECONFIG={sb.kubeconfig}",
                  flush=True)
            try:
                walk(Demo(sb, args.pause))
            except KeyboardInterrupt:
                print("\n# Interrupted; stopping the sandbox", file=sys.stderr)
                return 130
            finally:
                print("\n# Stopping the sandbox", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
