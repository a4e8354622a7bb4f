"""Generate a scenario with many sidecars (for benchmarks): the default scenario's gateway
and istiod, plus N single-replica Deployments with a Service each in namespace `bench`,
and optionally a gateway route config with many virtual hosts.

    python -m sandbox.generate --sidecars 50 > mesh50.yaml
    python -m sandbox.generate --sidecars 0 --vhosts 5000 > gw5000.yaml
"""

from __future__ import annotations

import argparse
import sys

import yaml

from .cluster import DEFAULT_SCENARIO


def scenario(sidecars: int, vhosts: int = 0, istiod_replicas: int = 1,
             namespace: str = "bench") -> list[dict]:
    def in_istio_system(d: dict) -> bool:
        meta = d.get("metadata") or {}
        return meta.get("namespace") == "istio-system" or (
            d.get("kind") == "Namespace" and meta.get("name") == "istio-system")

    base = [d for d in yaml.safe_load_all(DEFAULT_SCENARIO.read_text()) if d and in_istio_system(d)]
    for d in base:
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "istiod":
            d["spec"]["replicas"] = istiod_replicas
    docs = base + [{"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": namespace, "labels": {"istio-injection": "enabled"}}}]
    for i in range(sidecars):
        name = f"svc-{i:04d}"
        labels = {"app": name, "version": "v1"}
        docs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": name, "namespace": namespace},
                     "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                              "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                                  {"name": "app", "image": "sandbox/app",
                                   "ports": [{"containerPort": 8080, "name": "http"}]}]}}}})
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": name, "namespace": namespace},
                     "spec": {"selector": {"app": name},
                              "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    if vhosts:
        hosts = [f"host-{i:05d}.example.com" for i in range(vhosts)]
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                     "metadata": {"name": "bench-gateway", "namespace": namespace},
                     "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
                         {"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                          "hosts": hosts}]}})
        for i, host in enumerate(hosts):
            docs.append({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                         "metadata": {"name": f"vs-{i:05d}", "namespace": namespace},
                         "spec": {"hosts": [host], "gateways": ["bench-gateway"], "http": [
                             {"route": [{"destination": {
                                 "host": f"backend-{i:05d}.{namespace}.svc.cluster.local"}}]}]}})
            docs.append({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": f"backend-{i:05d}", "namespace": namespace},
                         "spec": {"selector": {"app": f"backend-{i:05d}"},
                                  "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    return docs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sidecars", type=int, default=50)
    p.add_argument("--vhosts", type=int, default=0)
    p.add_argument("--istiod-replicas", type=int, default=1)
    args = p.parse_args(argv)
    yaml.safe_dump_all(scenario(args.sidecars, args.vhosts, args.istiod_replicas), sys.stdout,
                       sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
