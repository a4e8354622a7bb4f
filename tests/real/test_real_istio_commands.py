"""Every `kubectl mesh` command end to end on real Istio, through real kubectl, beside the
istioctl command that is its peer: real istiod (a host process, reached by `--xds-address`
as an external control plane is), the minimal profile, and injected pods that the sandbox
kubelet runs with the real pilot-agent and Envoy as their istio-proxy
(`sandbox.real.istio.sidecar.proxy_command`), each in its own network and PID namespace,
reached by `kubectl port-forward`'s path (API server -> kubelet -> pod address). One cluster
for the module (docs/real-istio.md, "Every command on real Istio")."""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.client
import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest
import yaml

from sandbox.real.istio import (UPSTREAM_ENVOY_ENV, UPSTREAM_ENVOY_POD_VALUES,
                                UPSTREAM_ENVOY_VALUES, install)
from sandbox.real.istio.sidecar import kubelet_for
from sandbox.testing import wait_until

pytestmark = pytest.mark.timeout(600)
NS = "istioinaction"
# An egress listener of webapp's sidecar bound in its network namespace (Sidecar
# captureMode NONE: no iptables here), relayed to the pod's address: how a request goes
# through the real Envoy.
EGRESS_PORT = 9080


def workload(name: str, image: str, port: int = 3000) -> list[dict]:
    labels = {"app": name}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": NS}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS,
                                                            "labels": labels},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": port}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": {**labels, "version": "v1"}},
                               "spec": {"serviceAccountName": name, "containers": [{
                                   "name": name, "image": image,
                                   "ports": [{"containerPort": port}]}]}}}}]


# A request through webapp's real Envoy, as a user would turn its access log on: the Telemetry
# API with the built-in `envoy` provider (pkg/config/mesh/mesh.go DefaultMeshConfig: file
# /dev/stdout, Istio's default text format, pilot/pkg/model/telemetry_logging.go
# EnvoyTextLogFormat); an egress listener on 127.0.0.1:9080 in the pod's namespace (Sidecar,
# captureMode NONE, as without iptables); a ServiceEntry whose endpoint is pilot-agent's
# status port in the pod's namespace, so the request gets a real 200.
EGRESS = [
    {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
     "metadata": {"name": "mesh-default", "namespace": "istio-system"},
     "spec": {"accessLogging": [{"providers": [{"name": "envoy"}]}]}},
    {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
     "metadata": {"name": "agent", "namespace": NS},
     "spec": {"hosts": ["agent.local"], "location": "MESH_EXTERNAL", "resolution": "STATIC",
              "ports": [{"number": EGRESS_PORT, "name": "http", "protocol": "HTTP",
                         "targetPort": 15020}],
              "endpoints": [{"address": "127.0.0.1"}]}},
    {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
     "metadata": {"name": "webapp", "namespace": NS},
     "spec": {"workloadSelector": {"labels": {"app": "webapp"}},
              "egress": [{"port": {"number": EGRESS_PORT, "protocol": "HTTP", "name": "http-agent"},
                          "bind": "127.0.0.1", "captureMode": "NONE",
                          "hosts": [f"{NS}/agent.local"]},
                         {"hosts": ["*/*"]}]}}]
CATALOG_ROUTING = [
    {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
     "metadata": {"name": "catalog", "namespace": NS},
     "spec": {"host": "catalog", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}},
    {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
     "metadata": {"name": "catalog", "namespace": NS},
     "spec": {"hosts": ["catalog"], "http": [{"route": [{"destination": {
         "host": "catalog", "subset": "v1"}}]}]}}]


def table(text: str) -> list[list[str]]:
    """A table's rows (header first), cells split where two spaces or more are."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


def by_name(text: str, strip_ages: bool = True) -> dict[str, dict[str, str]]:
    header, *rows = table(text)
    return {row[0]: {h: re.sub(r" \(.*\)$", "", cell) if strip_ages else cell
                     for h, cell in zip(header, row)} for row in rows}


class Cluster:
    """The running cluster: control plane, istiod, kubelet; kubectl and istioctl on it."""

    def __init__(self, cp, istiod, binaries: pathlib.Path):
        self.cp, self.istiod, self.binaries = cp, istiod, binaries
        bindir = pathlib.Path(sys.executable).parent
        self.env = dict(os.environ, KUBECONFIG=str(cp.kubeconfig),
                        PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")

    def run(self, *args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                              env=self.env, input=input)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        out = self.run("kubectl", *args, input=input)
        assert out.returncode == 0, (args, out.stderr)
        return out.stdout

    def apply(self, objects: list[dict]) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                     input=yaml.safe_dump_all(objects))

    def mesh(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run("kubectl", "mesh", *args, timeout=timeout)

    def istioctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run(str(self.binaries / "istioctl"), *args, timeout=timeout)

    def xds(self) -> list[str]:
        """How both reach the host istiod: its address, its certificate's IP SAN."""
        return ["--xds-address", self.istiod.hostport("secure_grpc"),
                "--authority", self.istiod.address]

    def await_injector(self) -> None:
        """Until istiod has patched its root into the injector's webhook (before that the API
        server cannot call it)."""
        wait_until(what="the injector's caBundle", predicate=lambda: all(
            w["clientConfig"].get("caBundle") for w in json.loads(self.kubectl(
                "get", "mutatingwebhookconfiguration", "istio-sidecar-injector", "-o", "json"))
            ["webhooks"]), timeout=60)

    def injected_namespace(self, name: str) -> None:
        """Create namespace `name` labelled for injection, once the injector can be called."""
        self.await_injector()
        self.apply([{"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": name, "labels": {"istio-injection": "enabled"}}}])

    def pod(self, app: str) -> str:
        return self.kubectl("get", "pods", "-n", NS, "-l", f"app={app}",
                            "-o", "jsonpath={.items[0].metadata.name}")


ISTIOD = ("-n", "istio-system", "-l", "app=istiod")


@contextlib.contextmanager
def istiod_pod_cluster(cp, binaries: pathlib.Path):
    """Istio installed as `istioctl install` installs it, istiod a pod the kubelet runs in
    its network namespace: the Cluster once istiod's pod is Ready (the node stopped after)."""
    install(cp, binaries / "istioctl", None, extra=UPSTREAM_ENVOY_POD_VALUES, istiod="pod")
    with kubelet_for(cp, None, binaries=binaries, pod_network="netns"):
        c = Cluster(cp, None, binaries)
        wait_until(what="istiod's pod", predicate=lambda: c.kubectl(
            "get", "pods", *ISTIOD, "-o", "name").strip(), timeout=60)
        c.kubectl("wait", *ISTIOD, "--for=condition=Ready", "pod", "--timeout=110s")
        yield c


@pytest.fixture(scope="module")
def cluster(istio_meshes, binaries):
    cp, istiod = istio_meshes(values=UPSTREAM_ENVOY_VALUES, env=UPSTREAM_ENVOY_ENV)
    # pods on loopback addresses, each sidecar in a namespace of its own with relays (the
    # story of this module: findings 16, 17); the netns pod network with iptables capture is
    # test_real_istio_chapter10.py's
    with kubelet_for(cp, istiod, binaries=binaries, ports=(EGRESS_PORT,), pod_network="loopback"):
        c = Cluster(cp, istiod, binaries)
        c.injected_namespace(NS)
        c.apply([*workload("webapp", "docker.io/istioinaction/webapp:latest"),
                 *workload("catalog", "docker.io/istioinaction/catalog:latest")])
        # kubectl wait fails at once while the ReplicaSets have created no pod yet
        wait_until(what="the pods of both Deployments", predicate=lambda: len(c.kubectl(
            "get", "pods", "-n", NS, "-o", "name").split()) == 2, timeout=60)
        c.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod", "-l", "app in (webapp,catalog)",
                  "--timeout=120s")
        c.apply(EGRESS)
        c.apply(CATALOG_ROUTING)
        yield c


def ok(out: subprocess.CompletedProcess, *codes: int) -> str:
    assert out.returncode in (codes or (0,)), (out.args, out.returncode, out.stderr)
    return out.stdout


@pytest.fixture(scope="module")
def webapp(cluster) -> str:
    return f"{cluster.pod('webapp')}.{NS}"


@pytest.fixture(scope="module")
def catalog(cluster) -> str:
    return f"{cluster.pod('catalog')}.{NS}"


# -- sync beside istioctl proxy-status

SYNC_COLUMNS = ("CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD", "VERSION")


def statuses_beside(cluster, *flags: str) -> tuple[dict, dict]:
    ours = by_name(ok(cluster.mesh("sync", *cluster.xds(), *flags), 0, 7))  # 7: not all SYNCED
    theirs = by_name(ok(cluster.istioctl("proxy-status", "-v", "1", *cluster.xds())))
    return ({p: {c: row[c] for c in SYNC_COLUMNS} for p, row in ours.items()},
            {p: {c: row[c] for c in SYNC_COLUMNS} for p, row in theirs.items()})


def test_sync_beside_istioctl_proxy_status(cluster, webapp, catalog):
    ours, theirs = wait_until(what="both proxies SYNCED for both tools",
                              predicate=lambda: (lambda o, t: (
        o, t) if o == t and {r["RDS"] for r in o.values()} == {"SYNCED"} else None)(
        *statuses_beside(cluster)), timeout=60)
    assert set(ours) == {webapp, catalog}
    assert ours[webapp] == {"CLUSTER": "Kubernetes", "CDS": "SYNCED", "LDS": "SYNCED",
                            "EDS": "SYNCED", "RDS": "SYNCED", "ISTIOD": cluster.istiod.name,
                            "VERSION": "1.31-dev"}
    # istioctl's default table (no -v) shows subscribed types instead of statuses
    plain = by_name(ok(cluster.istioctl("proxy-status", *cluster.xds())), strip_ages=False)
    assert plain[webapp]["SUBSCRIBED TYPES"] == "4 (CDS,LDS,EDS,RDS)"


def test_sync_verify_asks_each_real_envoy(cluster, webapp, catalog):
    out = cluster.mesh("sync", *cluster.xds(), "--verify")
    ok(out)
    assert "verify: checked 2 proxies against their own Envoy: no problems" in out.stderr
    # Istio's bootstrap keeps no RDS, per-cluster or control_plane stats (pkg/bootstrap/config.go
    # requiredEnvoyStatsMatcherInclusionPrefixes): said once, for both proxies
    [unchecked] = [line for line in out.stderr.splitlines() if "not checked" in line]
    assert unchecked.startswith("verify: not checked on 2 of 2 proxies (") and \
        unchecked.split("): ", 1)[1].startswith("RDS, EDS, ADS stream – "), unchecked
    assert "proxyStatsMatcher" in unchecked
    assert set(by_name(out.stdout)) == {webapp, catalog}


# The sandbox's default gateway carries this annotation (sandbox/scenarios/default.yaml): on a
# real sidecar it must keep the same stats, so --verify checks what it checks on the double.
STATS_OPT_IN = ("proxyStatsMatcher:\n  inclusionPrefixes: [control_plane]\n"
                "  inclusionSuffixes: [update_rejected, version_text]\n")


def test_sync_verify_checks_rds_where_the_annotation_keeps_its_stats(cluster, webapp, catalog):
    """pilot-agent adds the pod's `proxy.istio.io/config` proxyStatsMatcher to Istio's stats
    matcher (pkg/bootstrap/config.go getStatsOptions): RDS, EDS and the ADS stream of that
    proxy are checked, the others' are still said to be unchecked."""
    objects = workload("ratings", "docker.io/istioinaction/catalog:latest")
    objects[-1]["spec"]["template"]["metadata"]["annotations"] = {
        "proxy.istio.io/config": STATS_OPT_IN}
    cluster.apply(objects)
    try:
        wait_until(what="the ratings pod", timeout=60, predicate=lambda: cluster.kubectl(
            "get", "pods", "-n", NS, "-l", "app=ratings", "-o", "name").strip())
        cluster.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod", "-l", "app=ratings",
                        "--timeout=120s")
        ratings = f"{cluster.pod('ratings')}.{NS}"
        ok(cluster.mesh("sync", *cluster.xds(), "--wait", "--timeout", "60s"))
        rds = ok(cluster.mesh("stats", f"pod/{ratings.split('.')[0]}", "-n", NS, "--filter",
                              r"\.rds\..*version_text|^control_plane\.connected_state"))
        assert "control_plane.connected_state: 1" in rds and ".rds." in rds, rds
        out = cluster.mesh("sync", *cluster.xds(), "--verify", "-o", "json")
        findings = json.loads(ok(out))["findings"]
        unchecked = {f["proxy"]: f["detail"] for f in findings if f["check"] == "UNCHECKED"}
        assert sorted(unchecked) == sorted([webapp, catalog]), findings
        assert all(d.startswith("not checked: RDS, EDS, ADS stream") for d in unchecked.values())
        [line] = [x for x in cluster.mesh("sync", *cluster.xds(), "--verify").stderr.splitlines()
                  if "not checked" in x]
        assert line.startswith("verify: not checked on 2 of 3 proxies ("), line
    finally:
        cluster.kubectl("delete", "deployment,service,serviceaccount", "ratings", "-n", NS,
                        "--wait=false")
        wait_until(what="the ratings pod gone", timeout=90, predicate=lambda: not cluster.kubectl(
            "get", "pods", "-n", NS, "-l", "app=ratings", "-o", "name").strip())


def envoy_route(cluster, pod: str, vhost: str) -> dict:
    dump = json.loads(ok(cluster.mesh("admin", pod, "/config_dump?resource=dynamic_route_configs")))
    for config in dump["configs"]:
        for host in config["route_config"].get("virtual_hosts", []):
            if host["name"] == vhost:
                return host["routes"][0]["route"]
    raise AssertionError(f"no virtual host {vhost} in {pod}")


def test_sync_wait_after_a_config_change(cluster, webapp):
    vhost = f"catalog.{NS}.svc.cluster.local:80"
    assert envoy_route(cluster, webapp, vhost).get("timeout") != "7s"
    routing = json.loads(json.dumps(CATALOG_ROUTING))
    routing[1]["spec"]["http"][0]["timeout"] = "7s"
    cluster.apply(routing)
    try:
        out = cluster.mesh("sync", *cluster.xds(), "--wait", "--timeout", "60s")
        ok(out)
        assert {r["RDS"] for r in by_name(out.stdout).values()} == {"SYNCED"}
        # --wait returned once Envoy ACKed the push: the new route is in Envoy already
        assert envoy_route(cluster, webapp, vhost)["timeout"] == "7s"
        ours, theirs = statuses_beside(cluster)
        assert ours == theirs
    finally:
        cluster.apply(CATALOG_ROUTING)


def envoy_pid(cluster, pod: str) -> int:
    """The real Envoy of `pod`'s istio-proxy: the envoy process whose working directory is
    the container's (the kubelet's pods/<ns>/<pod>/istio-proxy)."""
    directory = cluster.cp.state_dir / "kubelet" / "pods" / NS / pod.split(".")[0] / "istio-proxy"
    for proc in pathlib.Path("/proc").iterdir():
        try:
            if (proc.name.isdigit() and (proc / "comm").read_text().strip() == "envoy"
                    and pathlib.Path(os.readlink(proc / "cwd")) == directory):
                return int(proc.name)
        except OSError:
            continue
    raise AssertionError(f"no envoy process in {directory}")


def test_a_paused_envoy_is_stale_for_both_and_unreachable_for_verify(cluster, webapp, catalog):
    pid = envoy_pid(cluster, webapp)
    routing = json.loads(json.dumps(CATALOG_ROUTING))
    routing[1]["spec"]["http"][0]["timeout"] = "4s"
    os.kill(pid, signal.SIGSTOP)
    try:
        cluster.apply(routing)
        # catalog's Envoy gets the same push and ACKs it while the two tools ask one after
        # the other: compare once catalog is SYNCED again for both
        def stale() -> tuple[dict, dict] | None:
            ours, theirs = statuses_beside(cluster)
            settled = (ours[webapp]["RDS"] == theirs[webapp]["RDS"] == "STALE"
                       and ours[catalog]["RDS"] == theirs[catalog]["RDS"] == "SYNCED")
            return (ours, theirs) if settled else None
        ours, theirs = wait_until(what="webapp's RDS STALE and catalog's SYNCED for both tools",
                                  predicate=stale, timeout=60)
        assert ours == theirs
        out = cluster.mesh("sync", *cluster.xds(), "--verify", "--request-timeout", "5s")
        assert out.returncode == 7, out.stderr
        assert f"1 of 2 proxies not SYNCED ({webapp})" in out.stderr
        [problem] = [r for r in table(out.stdout) if r[0] == webapp and len(r) == 4]
        assert problem[1] == "UNREACHABLE" and "a paused or overloaded Envoy" in problem[3]
    except BaseException:
        os.kill(pid, signal.SIGCONT)
        cluster.apply(CATALOG_ROUTING)
        raise
    os.kill(pid, signal.SIGCONT)
    try:
        ok(cluster.mesh("sync", *cluster.xds(), "--wait", "--timeout", "60s"))
        assert envoy_route(cluster, webapp, f"catalog.{NS}.svc.cluster.local:80")["timeout"] == "4s"
    finally:
        cluster.apply(CATALOG_ROUTING)


# -- proxy-config tables, live, beside istioctl proxy-config

@pytest.mark.parametrize("command", ["routes", "clusters", "listeners", "endpoints", "secrets",
                                     "routes --name 9080", "clusters --fqdn agent.local",
                                     "listeners --port 9080"])
def test_proxy_config_tables_beside_istioctl(cluster, webapp, command):
    name, *flags = command.split()
    ours = ok(cluster.mesh(name, webapp, *flags))
    theirs = ok(cluster.istioctl("proxy-config", name, webapp, *flags))
    ours, theirs = ([line.rstrip() for line in out.splitlines()] for out in (ours, theirs))
    assert len(theirs) >= 2
    if name != "routes":
        assert ours == theirs
        return
    # istioctl sorts route configs with a comparator that calls every non-numeric name equal
    # to everything (istioctl/pkg/writer/envoy/configdump/route.go retrieveSortedRouteSlice):
    # its order follows Envoy's dump order, which changes from run to run. The same rows;
    # ours numeric names first, ascending, then the others in dump order.
    assert ours[0] == theirs[0] and sorted(ours) == sorted(theirs)
    names = [line.split()[0] if not line.startswith(" ") else "" for line in ours[1:]]
    numeric = [int(n) for n in names if n.isdigit()]
    assert names[:len(numeric)] == [str(n) for n in sorted(numeric)]


def pem_field(pem: str, *args: str) -> str:
    return subprocess.run(["openssl", "x509", "-noout", *args], input=pem, capture_output=True,
                          text=True, check=True, timeout=30).stdout.strip()


def openssl_time(field: str) -> str:
    """`notAfter=Dec  7 21:09:45 2026 GMT` as istioctl prints times: 2026-12-07T21:09:45Z."""
    value = datetime.datetime.strptime(field.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_secrets_are_istiods_workload_certificate(cluster, webapp):
    rows = by_name(ok(cluster.mesh("secrets", webapp)), strip_ages=False)
    assert {r["TYPE"] for r in rows.values()} == {"Cert Chain", "CA"}
    ca = base64.b64decode(json.loads(cluster.kubectl(
        "get", "secret", "-n", "istio-system", "istio-ca-secret", "-o", "json"))["data"]["ca-cert.pem"]).decode()
    assert rows["ROOTCA"]["SERIAL NUMBER"] == pem_field(ca, "-serial").split("=")[1].lower()
    [default] = [s for s in json.loads(ok(cluster.mesh("secrets", webapp, "-o", "json")))
                 if s["name"] == "default"]
    chain = base64.b64decode(default["secret"]["tls_certificate"]["certificate_chain"]
                             ["inline_bytes"]).decode()
    leaf = chain.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    # the trust domain (mesh config trustDomain) and the pod's service account
    assert f"URI:spiffe://cluster.local/ns/{NS}/sa/webapp" in pem_field(leaf, "-ext", "subjectAltName")
    assert rows["default"]["SERIAL NUMBER"] == pem_field(leaf, "-serial").split("=")[1].lower()
    # validity as the certificates say (istiod backdates notBefore; workload TTL 24 h)
    for row, pem in ((rows["default"], leaf), (rows["ROOTCA"], ca)):
        assert row["NOT BEFORE"] == openssl_time(pem_field(pem, "-startdate"))
        assert row["NOT AFTER"] == openssl_time(pem_field(pem, "-enddate"))
    assert rows["default"]["VALID CERT"] == "true" and rows["default"]["STATUS"] == "ACTIVE"


# -- routes --trace and --check on the live sidecar

def test_routes_trace_through_the_real_config(cluster, webapp):
    out = ok(cluster.mesh("routes", webapp, "--trace", f"http://agent.local:{EGRESS_PORT}/healthz/ready"))
    assert f"route config  {EGRESS_PORT}" in out
    assert f"cluster       outbound|{EGRESS_PORT}||agent.local" in out
    # a sidecar's outbound request keeps the Service port (80), though webapp's own Service
    # maps 80 to its pod port 3000; catalog has no endpoint (loopback pod addresses cannot be
    # in an EndpointSlice): Envoy answers 503 UH
    out = cluster.mesh("routes", webapp, "--trace", f"http://catalog.{NS}/items", "-o", "json")
    ok(out, 7)
    trace = json.loads(out.stdout)
    assert trace["port"] == 80, trace
    assert [h["name"] for h in trace["hops"]][:3] == ["0.0.0.0_80", "#0", "80"]
    assert "503 UH" in out.stderr


def test_routes_check_reports_the_clusters_without_endpoints(cluster, webapp):
    out = cluster.mesh("routes", webapp, "--check", "-o", "json")
    ok(out, 7)
    where = {f["where"] for f in json.loads(out.stdout) if f["kind"] == "no_healthy_endpoints"}
    assert f"outbound|80|v1|catalog.{NS}.svc.cluster.local" in where  # the VirtualService's subset
    assert not [w for w in where if "agent.local" in w]


# -- loglevel beside istioctl proxy-config log

def istioctl_levels(cluster, pod: str, *flags: str) -> dict[str, str]:
    out = ok(cluster.istioctl("proxy-config", "log", pod, *flags))
    return dict(line.strip().split(": ", 1) for line in out.splitlines() if line.startswith("  "))


def test_loglevel_read_and_set_beside_istioctl(cluster, webapp):
    ours = {r[0]: r[1] for r in table(ok(cluster.mesh("loglevel", webapp)))[1:]}
    assert len(ours) > 50
    assert ours == istioctl_levels(cluster, webapp)
    ok(cluster.mesh("loglevel", webapp, "--level", "http:debug"))
    assert istioctl_levels(cluster, webapp)["http"] == "debug"
    istioctl_levels(cluster, webapp, "--level", "rbac:trace")
    ours = {r[0]: r[1] for r in table(ok(cluster.mesh("loglevel", webapp)))[1:]}
    assert (ours["http"], ours["rbac"]) == ("debug", "trace")
    ok(cluster.mesh("loglevel", webapp, "--level", "http:warning,rbac:warning"))
    assert ours.keys() == istioctl_levels(cluster, webapp).keys()
    assert {istioctl_levels(cluster, webapp)[k] for k in ("http", "rbac")} == {"warning"}


# -- describe beside istioctl x describe pod

# What kubectl mesh adds to istioctl's lines (README "describe"): a line for every destination
# of a route to the service, a route's timeout, retries and mirrors, whether mTLS is required,
# the applied Sidecar.
OUR_ADDITIONS = re.compile(r'^(\s+mTLS required: |\s+Route to host "|\s+Timeout |\s+Retries |'
                           r'\s+Mirror to host "|Applied Sidecar:$|\s+\S+ \(egress hosts )')


@pytest.mark.parametrize("app", ["catalog", "webapp"])
def test_describe_pod_beside_istioctl(cluster, app):
    pod = cluster.pod(app)
    ours = ok(cluster.mesh("describe", "pod", pod, "-n", NS)).splitlines()
    theirs = ok(cluster.istioctl("x", "describe", "pod", pod, "-n", NS)).splitlines()
    assert [line for line in ours if not OUR_ADDITIONS.match(line)] == theirs
    if app == "catalog":
        assert "VirtualService: catalog" in theirs and "   1 HTTP route(s)" in theirs
        assert any("DestinationRule: catalog" in line for line in theirs)
        assert '   Route to host "catalog" subset "v1"' in ours
    else:
        assert f"   webapp.{NS} (egress hosts {NS}/agent.local, */*)" in ours


# -- analyze beside istioctl analyze

def test_analyze_a_broken_virtual_service_beside_istioctl(cluster):
    broken = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
              "metadata": {"name": "catalog-broken", "namespace": NS},
              "spec": {"hosts": ["catalog.example.com"], "gateways": ["no-such-gateway"],
                       "http": [{"route": [{"destination": {"host": "catalog",
                                                            "subset": "v9"}}]}]}}
    cluster.apply([broken])
    try:
        theirs = cluster.istioctl("analyze", "-n", NS, "--color=false")
        ours = cluster.mesh("analyze", "-n", NS)
        assert theirs.returncode == 79 and ours.returncode == 7, (theirs.stderr, ours.stderr)
        ist0101 = [line for line in theirs.stdout.splitlines() if "IST0101" in line]
        assert len(ist0101) == 2, theirs.stdout
        assert [line for line in ours.stdout.splitlines() if "IST0101" in line] == ist0101
        assert set(ours.stdout.splitlines()) <= set(theirs.stdout.splitlines())
    finally:
        cluster.kubectl("delete", "virtualservice", "-n", NS, "catalog-broken")


# -- accesslog with Istio's default format

def request(cluster, webapp: str, host: str, path: str) -> int:
    """A request through webapp's Envoy: the egress listener, relayed to the pod's address."""
    address = cluster.kubectl("get", "pod", "-n", NS, webapp.split(".")[0],
                              "-o", "jsonpath={.status.podIP}")
    conn = http.client.HTTPConnection(address, EGRESS_PORT, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        return conn.getresponse().status
    finally:
        conn.close()


def test_accesslog_reads_istios_default_format(cluster, webapp):
    assert wait_until(what="a 200 through the egress listener", predicate=lambda: request(
        cluster, webapp, f"agent.local:{EGRESS_PORT}", "/healthz/ready") == 200, timeout=60)
    assert request(cluster, webapp, f"nowhere.local:{EGRESS_PORT}", "/nothing") == 503

    def logged():
        out = cluster.mesh("accesslog", webapp, "--strict", "-o", "json")
        ok(out)
        entries = json.loads(out.stdout)
        return entries if {e["path"] for e in entries} >= {"/healthz/ready", "/nothing"} else None
    entries = wait_until(what="both requests in the access log", predicate=logged, timeout=60)
    served = next(e for e in entries if e["path"] == "/healthz/ready")
    assert (served["response_code"], served["response_flags"], served["response_code_details"]) == \
        (200, [], "via_upstream")
    assert served["upstream_cluster"] == f"outbound|{EGRESS_PORT}||agent.local"
    assert served["upstream_host"] == "127.0.0.1:15020"
    assert served["authority"] == f"agent.local:{EGRESS_PORT}"
    assert served["downstream_local_address"] == f"127.0.0.1:{EGRESS_PORT}"
    assert served["route_name"] == "default" and served["method"] == "GET"
    failed = next(e for e in entries if e["path"] == "/nothing")
    assert (failed["response_code"], failed["response_flags"]) == (503, ["UH"])
    assert failed["upstream_cluster"] == "PassthroughCluster"
    out = ok(cluster.mesh("accesslog", webapp, "--flags", "UH"))
    assert "/nothing" in out and "/healthz/ready" not in out


# -- stats, bootstrap, admin

def stat_names(text: str) -> set[str]:
    return {line.split(":")[0] for line in text.splitlines() if line.startswith("server.")}


def test_stats_beside_istioctl_envoy_stats(cluster, webapp):
    ours = ok(cluster.mesh("stats", webapp))
    theirs = ok(cluster.istioctl("x", "envoy-stats", webapp))
    assert len(stat_names(theirs)) > 20
    assert stat_names(ours) == stat_names(theirs)
    cluster_stat = re.compile(r"^outbound\|9080\|\|agent\.local::(observability_name|added_via_api)")
    ours = ok(cluster.mesh("stats", webapp, "-t", "clusters"))
    theirs = ok(cluster.istioctl("x", "envoy-stats", webapp, "--type", "clusters"))
    assert sorted(filter(cluster_stat.match, ours.splitlines())) == \
        sorted(filter(cluster_stat.match, theirs.splitlines())) != []


def test_bootstrap_beside_istioctl(cluster, webapp):
    ours = ok(cluster.mesh("bootstrap", webapp))
    short = dict(line.split(":", 1) for line in ok(cluster.istioctl(
        "proxy-config", "bootstrap", webapp, "-o", "short")).splitlines() if ":" in line)
    node = json.loads(ok(cluster.istioctl("proxy-config", "bootstrap", webapp, "-o", "json")))[
        "bootstrap"]["node"]
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in ours.splitlines())}
    assert fields["Istio Version"] == short["Istio Version"].strip() == "1.31-dev"
    assert fields["Envoy Version"] == short["Envoy Version"].strip()
    assert fields["Node ID"] == node["id"] and fields["Cluster"] == node["cluster"]
    assert fields["xDS Server"].startswith("ADS DELTA_GRPC")
    ours_json = json.loads(ok(cluster.mesh("bootstrap", webapp, "-o", "json")))
    assert ours_json["bootstrap"]["node"]["id"] == node["id"]


def test_admin_reads_and_refuses_writes_without_allow_write(cluster, webapp):
    info = json.loads(ok(cluster.mesh("admin", webapp, "/server_info")))
    assert info["state"] == "LIVE"
    node = json.loads(ok(cluster.istioctl("proxy-config", "bootstrap", webapp, "-o", "json")))[
        "bootstrap"]["node"]
    assert info["node"]["id"] == node["id"] and webapp in node["id"]
    out = cluster.mesh("admin", webapp, "/healthcheck/fail")
    assert out.returncode == 2 and "add --allow-write" in out.stderr
    assert ok(cluster.mesh("admin", webapp, "/ready")).strip() == "LIVE"
