"""A real Envoy on 127.0.60.x (this suite's address range) with a small static bootstrap."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import requests

ENVOY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "envoy"
HOST = "127.0.60.1"
CATALOG = "outbound|80|v1|catalog.istioinaction.svc.cluster.local"


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def bootstrap(admin_port: int, listener_port: int) -> dict:
    def cluster(name, port, meta=None):
        c = {"name": name, "type": "STATIC", "connect_timeout": "1s",
             "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                 {"endpoint": {"address": {"socket_address": {"address": "127.0.60.2",
                                                              "port_value": port}}}}]}]}}
        if meta:
            c["metadata"] = {"filter_metadata": {"istio": {"config": meta}}}
        return c

    route = {"name": "8080", "virtual_hosts": [{
        "name": "catalog:80", "domains": ["catalog", "catalog.istioinaction.svc.cluster.local"],
        "routes": [{"match": {"prefix": "/"}, "route": {"weighted_clusters": {"clusters": [
            {"name": CATALOG, "weight": 90}, {"name": "backend", "weight": 10}]},
            "timeout": "3s"},
            "metadata": {"filter_metadata": {"istio": {"config":
                "/apis/networking.istio.io/v1/namespaces/istioinaction/virtual-service/catalog"}}}}],
    }]}
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network."
                    "http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "ingress", "route_config": route,
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    return {
        "node": {"id": "sidecar~127.0.60.1~catalog-7d9f.istioinaction~istioinaction.svc.cluster.local",
                 "cluster": "catalog.istioinaction"},
        "admin": {"address": {"socket_address": {"address": HOST, "port_value": admin_port}}},
        "static_resources": {
            "clusters": [cluster("backend", 9), cluster(CATALOG, 10,
                         "/apis/networking.istio.io/v1/namespaces/istioinaction/destination-rule/catalog")],
            "listeners": [{"name": "0.0.0.0_8080", "address": {"socket_address": {
                "address": HOST, "port_value": listener_port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}]}],
        },
    }


class RunningEnvoy:
    """Start Envoy, wait for /ready, stop it in `stop()` (always called by the fixture)."""

    def __init__(self, workdir: Path):
        self.admin_port = free_port()
        self.listener_port = free_port()
        config = workdir / "bootstrap.json"
        config.write_text(json.dumps(bootstrap(self.admin_port, self.listener_port)))
        self.log = open(workdir / "envoy.log", "wb")
        self.proc = subprocess.Popen(
            [str(ENVOY), "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
             "--base-id-path", str(workdir / "base-id"), "-l", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.base_url = f"http://{HOST}:{self.admin_port}"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited: {(workdir / 'envoy.log').read_text()[-2000:]}")
            try:
                if requests.get(self.base_url + "/ready", timeout=0.5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("envoy did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
