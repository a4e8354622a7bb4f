"""The book's chapter-10 story (Istio in Action) end to end on real Istio: real istiod, the
sandbox kubelet giving every pod a network namespace of its own (`pod_network="netns"`), each
injected pod's istio-init running the real `pilot-agent istio-iptables` in it and its
istio-proxy the real `pilot-agent proxy sidecar` as UID 1337, and an ingress gateway
deployed as a user deploys one (`inject.istio.io/templates: gateway`, image `auto`), run as
`pilot-agent proxy router`. Requests go to the gateway pod's IP, which routes to catalog's
pods by their EndpointSlice addresses, where iptables captures them into the sidecar.

The story: a VirtualService splitting catalog 20/80 to subsets no DestinationRule defines ->
503 NC at the gateway -> `routes --trace` names the missing subset cluster, `istioctl
analyze` and `kubectl mesh analyze` say IST0101 -> the DestinationRule -> `sync --wait` ->
200s over mTLS -> a 0.5 s timeout with a slow catalog pod -> UT in the access log, and
`accesslog --by upstream` names the slow pod (docs/real-istio.md, "Chapter 10 on real
Istio"). The steps depend on each other: they run in file order on one cluster."""

from __future__ import annotations

import http.client
import json
import pathlib
import re
import subprocess
import time

import pytest
import yaml

from sandbox.behaviour import Behaviours
from sandbox.real.istio import UPSTREAM_ENVOY_ENV, UPSTREAM_ENVOY_VALUES, Istiod, install
from sandbox.real.istio.sidecar import kubelet_for, pod_side_istiod
from sandbox.testing import SCENARIOS, wait_until

from tests.real.test_real_istio_commands import Cluster, ok

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]
NS = "istioinaction"
GW = ("deploy/istio-ingressgateway", "-n", "istio-system")
HOST = "catalog.istioinaction.io"
URL = f"http://{HOST}/items"
CATALOG = "catalog.istioinaction.svc.cluster.local"
SUBSET_V1 = f"outbound|80|version-v1|{CATALOG}"


def scenario(name: str) -> list[dict]:
    """The double's chapter-10 documents (sandbox/scenarios), without its own istiod and
    gateway (here real istiod, and the gateway below) and without sandbox-only kinds."""
    docs = [d for d in yaml.safe_load_all((SCENARIOS / name).read_text()) if d]
    return [d for d in docs if not d["kind"].startswith("Behaviour")
            and d["metadata"].get("namespace", d["metadata"]["name"]) != "istio-system"]


def slow_pod() -> list[dict]:
    """The scenario's Behaviour: the first catalog v2 pod answers after 1 s."""
    return [d for d in yaml.safe_load_all((SCENARIOS / "default.yaml").read_text())
            if d and d["kind"] == "Behaviour"]


# An ingress gateway as a user deploys one with gateway injection
# (https://istio.io/latest/docs/setup/additional-setup/gateway/ "Deploying a gateway"):
# the `gateway` injection template (manifests/charts/istio-control/istio-discovery/files/
# gateway-injection-template.yaml) fills in the istio-proxy container of image `auto` with
# `proxy router`, runAsUser 1337, and no istio-init.
GATEWAY = [
    {"apiVersion": "v1", "kind": "ServiceAccount",
     "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
     "spec": {"selector": {"matchLabels": {"istio": "ingressgateway"}},
              "template": {
                  "metadata": {"annotations": {"inject.istio.io/templates": "gateway"},
                               "labels": {"istio": "ingressgateway",
                                          "app": "istio-ingressgateway",
                                          "sidecar.istio.io/inject": "true"}},
                  "spec": {"serviceAccountName": "istio-ingressgateway",
                           "containers": [{"name": "istio-proxy", "image": "auto"}]}}}},
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
     "spec": {"selector": {"istio": "ingressgateway"},
              "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}},
]
# Access logging as a user turns it on: the Telemetry API, the built-in `envoy` provider.
ACCESS_LOG = [{"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
               "metadata": {"name": "mesh-default", "namespace": "istio-system"},
               "spec": {"accessLogging": [{"providers": [{"name": "envoy"}]}]}}]


@pytest.fixture(scope="module")
def cluster(control_planes, binaries):
    cp = control_planes()
    gateway_ip = pod_side_istiod(cp).rsplit(":", 1)[0]
    istiod = Istiod(cp, binaries=binaries, env=UPSTREAM_ENVOY_ENV, hosts=(gateway_ip,))
    install(cp, binaries / "istioctl", istiod.address, extra=UPSTREAM_ENVOY_VALUES)
    with istiod, kubelet_for(cp, istiod, binaries=binaries, pod_network="netns",
                             behaviours=Behaviours(slow_pod())):
        c = Cluster(cp, istiod, binaries)
        c.await_injector()
        c.apply(ACCESS_LOG)
        c.apply(scenario("default.yaml"))
        c.apply(GATEWAY)
        wait_until(what="the pods of the four Deployments", predicate=lambda: len(c.kubectl(
            "get", "pods", "-A", "-l", "app in (catalog,istio-ingressgateway)",
            "-o", "name").split()) == 4, timeout=60)
        for ns in (NS, "istio-system"):
            c.kubectl("wait", "-n", ns, "--for=condition=Ready", "pod", "--all",
                      "--timeout=180s")
        # Ready says catalog listens (the sandbox checks from inside the pod); the request
        # through each pod's own sidecar also waits for that sidecar's inbound config
        for ip in c.kubectl("get", "pods", "-n", NS, "-l", "app=catalog",
                            "-o", "jsonpath={.items[*].status.podIP}").split():
            wait_until(what=f"catalog on {ip}:3000", predicate=lambda: answers(ip, 3000),
                       timeout=60)
        yield c


def pod_ip(cluster, namespace: str, selector: str) -> str:
    return cluster.kubectl("get", "pods", "-n", namespace, "-l", selector,
                           "-o", "jsonpath={.items[0].status.podIP}")


def answers(address: str, port: int) -> bool:
    try:
        return get(address, "/", "catalog", port)[0] == 200
    except OSError:
        return False


def get(address: str, path: str = "/items", host: str = HOST,
        port: int = 8080) -> tuple[int, str]:
    conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def netns_of(cluster, namespace: str, pod: str) -> str:
    uid = cluster.kubectl("get", "pod", "-n", namespace, pod, "-o", "jsonpath={.metadata.uid}")
    return f"kmesh{cluster.cp.addresses.network}-{uid}"


def process_users(netns: str) -> dict[str, str]:
    """The real UID of each process in the network namespace `netns`, by command name."""
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True,
                          check=True).stdout.split()
    users = {}
    for pid in pids:
        try:
            status = pathlib.Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        name = re.search(r"^Name:\s+(\S+)", status, re.M).group(1)
        users[name] = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    return users


def test_istio_init_captures_and_the_proxy_runs_as_1337(cluster):
    pod = cluster.kubectl("get", "pods", "-n", NS, "-l", "version=v1",
                          "-o", "jsonpath={.items[0].metadata.name}")
    netns = netns_of(cluster, NS, pod)
    rules = subprocess.run(["ip", "netns", "exec", netns, "iptables-save", "-t", "nat"],
                           capture_output=True, text=True, check=True).stdout
    # tools/istio-iptables/pkg/capture/run.go: inbound to 15006, outbound to 15001, the
    # proxy's own UID exempt
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in rules, rules
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in rules, rules
    assert "-m owner --uid-owner 1337 -j RETURN" in rules, rules
    users = process_users(netns)
    assert users.get("envoy") == "1337" and users.get("pilot-agent") == "1337", users
    gateway = cluster.kubectl("get", "pods", "-n", "istio-system", "-l", "istio=ingressgateway",
                              "-o", "json")
    container = json.loads(gateway)["items"][0]["spec"]["containers"][0]
    assert container["args"][:2] == ["proxy", "router"], container["args"]
    # the catalog Service's endpoints are the pods' own addresses
    slices = json.loads(cluster.kubectl("get", "endpointslices", "-n", NS,
                                        "-l", "kubernetes.io/service-name=catalog", "-o", "json"))
    addresses = {a for s in slices["items"] for e in s.get("endpoints") or []
                 for a in e["addresses"]}
    assert len(addresses) == 3 and all(a.startswith("10.244.") for a in addresses), addresses


def test_a_captured_pod_is_ready_only_once_its_app_listens(cluster):
    """The sandbox's readiness for a container without a probe is "its ports accept": from
    the node, the pod IP is redirected to Envoy's 15006, which accepts while the app is
    still starting, so the check must dial the app from inside the pod."""
    labels = {"app": "slowstart"}
    cluster.apply([{"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "slowstart", "namespace": NS},
                    "spec": {"selector": {"matchLabels": labels}, "template": {
                        "metadata": {"labels": labels, "annotations": {
                            "sandbox.kubectl-mesh.io/startup-delay": "5s"}},
                        "spec": {"containers": [{"name": "app", "image": "sandbox/app",
                                                 "ports": [{"containerPort": 3000}]}]}}}}])
    try:
        wait_until(what="the slowstart pod", predicate=lambda: cluster.kubectl(
            "get", "pods", "-n", NS, "-l", "app=slowstart", "-o", "name"), timeout=60)
        cluster.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod", "-l", "app=slowstart",
                        "--timeout=120s")
        # one request, no retry: Ready must mean the app answers
        assert get(pod_ip(cluster, NS, "app=slowstart"), "/", "slowstart", 3000)[0] == 200
    finally:
        cluster.kubectl("delete", "deployment", "-n", NS, "slowstart", "--wait=true")


def test_without_a_destinationrule_the_gateway_answers_503_nc(cluster):
    gateway = pod_ip(cluster, "istio-system", "istio=ingressgateway")
    status, _ = wait_until(what="the gateway's route for the VirtualService", predicate=lambda: (
        lambda r: r if r[0] != 404 else None)(get(gateway)), timeout=60)
    assert status == 503

    def logged():
        out = ok(cluster.mesh("accesslog", *GW, "--strict", "-o", "json"))
        return [e for e in json.loads(out) if e["path"] == "/items"] or None
    entry = wait_until(what="the 503 in the gateway's access log", predicate=logged, timeout=60)[-1]
    assert (entry["response_code"], entry["response_flags"]) == (503, ["NC"]), entry
    assert entry["authority"] == HOST


def test_routes_trace_names_the_missing_subset_cluster(cluster):
    out = cluster.mesh("routes", *GW, "--trace", URL)
    assert out.returncode == 7, (out.stdout, out.stderr)
    assert "503 NC cluster_not_found" in out.stdout, out.stdout
    assert SUBSET_V1 in out.stdout, out.stdout
    assert f"no DestinationRule defines subset version-v1 for host {CATALOG}" in out.stdout
    assert "port 80 is the Service port; the proxy listens on 8080" in out.stdout


def test_istioctl_analyze_and_ours_say_ist0101(cluster):
    theirs = cluster.istioctl("analyze", "-n", NS, "--color=false")
    ours = cluster.mesh("analyze", "-n", NS)
    assert theirs.returncode == 79 and ours.returncode == 7, (theirs.stdout, ours.stdout)
    ist0101 = [line for line in theirs.stdout.splitlines() if "IST0101" in line]
    assert len(ist0101) == 2 and all("catalog-v1-v2" in line for line in ist0101), theirs.stdout
    assert [line for line in ours.stdout.splitlines() if "IST0101" in line] == ist0101


def test_the_destinationrule_then_sync_wait_gives_200s_over_mtls(cluster):
    cluster.kubectl("apply", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"))
    out = cluster.mesh("sync", *cluster.xds(), "--wait", "--timeout", "60s", timeout=120)
    assert out.returncode == 0, (out.stdout, out.stderr)
    gateway = pod_ip(cluster, "istio-system", "istio=ingressgateway")
    # 40 requests: at the 20/80 split, P(none reaches v1) = 0.8^40 ≈ 0.0001 (0.11 with 10)
    statuses = [get(gateway)[0] for _ in range(40)]
    assert statuses == [200] * 40, statuses
    trace = cluster.mesh("routes", *GW, "--trace", URL)
    assert trace.returncode == 0, (trace.stdout, trace.stderr)
    assert not [line for line in ok(cluster.istioctl("analyze", "-n", NS, "--color=false"))
                .splitlines() if "IST0101" in line]
    # the gateway reached catalog's sidecars over Istio's mTLS (auto mTLS: the endpoints
    # carry tlsMode istio), with the SNI of the subset cluster
    # (pilot/pkg/networking/util `BuildDNSSrvSubsetKey`) on the sidecars' inbound lines
    # (Envoy writes its access log every second: asked again until both subsets show)
    expected = {f"outbound_.80_.version-{v}_.{CATALOG}" for v in ("v1", "v2")}
    deadline = time.monotonic() + 10
    while True:
        entries = json.loads(ok(cluster.mesh("accesslog", "-n", NS, "-l", "app=catalog",
                                             "--path", "/items", "--code", "200", "-o", "json")))
        names = {e["requested_server_name"] for e in entries}
        if names == expected or time.monotonic() > deadline:
            break
    assert names == expected, entries


def test_a_half_second_timeout_shows_ut_and_the_slow_pod(cluster):
    cluster.kubectl("apply", "-f", str(SCENARIOS / "catalog-timeout.yaml"))
    ok(cluster.mesh("sync", *cluster.xds(), "--wait", "--timeout", "60s", timeout=120))
    gateway = pod_ip(cluster, "istio-system", "istio=ingressgateway")
    statuses = [get(gateway)[0] for _ in range(20)]
    assert 504 in statuses and 200 in statuses, statuses
    timed_out = json.loads(ok(cluster.mesh("accesslog", *GW, "--flags", "UT", "-o", "json")))
    assert timed_out and {e["response_code"] for e in timed_out} == {504}, timed_out
    by_upstream = ok(cluster.mesh("accesslog", *GW, "--by", "upstream"))
    rows = {line.split()[0]: line.split() for line in by_upstream.split("\n\nFLAGS")[0]
            .splitlines()[1:]}
    ut = [name for name, row in rows.items() if row[-1] == "UT"]
    assert ut == [f"{slow_pod_name(cluster)}.{NS}"], by_upstream


def slow_pod_name(cluster) -> str:
    """The catalog pod whose app takes 1 s (the scenario's Behaviour), found by timing a
    request to each pod (through its sidecar)."""
    pods = json.loads(cluster.kubectl("get", "pods", "-n", NS, "-l", "app=catalog", "-o", "json"))
    slow = []
    for pod in pods["items"]:
        started = time.monotonic()
        assert get(pod["status"]["podIP"], "/items", "catalog", 3000)[0] == 200
        if time.monotonic() - started >= 1.0:
            slow.append(pod["metadata"]["name"])
    assert len(slow) == 1, slow
    return slow[0]


def test_sniff_on_lo_sees_the_plaintext_leg_from_envoy_to_the_app(cluster, tmp_path):
    """With capture on, a request to the pod IP arrives at Envoy's 15006 and goes on to the
    app over lo, from 127.0.0.6 (Istio's inbound passthrough source: pilot/pkg/networking/
    core `InboundPassthroughBindIpv4`), in plaintext: what `sniff -i lo` is for."""
    pod = json.loads(cluster.kubectl("get", "pods", "-n", NS, "-l", "version=v1", "-o", "json"))
    name, ip = pod["items"][0]["metadata"]["name"], pod["items"][0]["status"]["podIP"]
    pcap = tmp_path / "lo.pcap"
    sniff = subprocess.Popen(
        ["kubectl", "mesh", "sniff", f"{name}.{NS}", "-i", "lo", "-f", "tcp port 3000",
         "--count", "20", "--duration", "2m", "-o", str(pcap)],
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def captured():  # requests until tcpdump has its 20 packets
            assert get(ip, "/items", "catalog", 3000)[0] == 200
            return sniff.poll() is not None
        wait_until(what="20 packets on the pod's lo", predicate=captured, timeout=120, interval=0.5)
    finally:
        sniff.terminate()
        _, err = sniff.communicate(timeout=30)
    assert sniff.returncode == 0, err
    text = subprocess.run(["tcpdump", "-nn", "-A", "-r", str(pcap)], capture_output=True,
                          text=True, check=True).stdout
    assert "GET /items" in text, text[:2000]
    assert "127.0.0.6." in text and f"{ip}.3000" in text, text[:2000]
