"""Services and DNS on the netns pod network: the node's service proxy (ClusterIP:port →
a ready endpoint by iptables DNAT, sandbox/real/kubelet/serviceproxy.py) and cluster DNS on
the bridge's gateway (sandbox/real/kubelet/dns.py), fed by the Services and EndpointSlices of
the real API server and the real controller-manager.

What a broken implementation gets wrong: a name that does not resolve in a pod (no
resolv.conf, no search path, no server), a ClusterIP that goes nowhere (from a pod, from the
node, from the endpoint itself: hairpin), a Service without endpoints that still answers or
hangs instead of refusing, and chains, files or the DNS socket left after stop or a crash."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import pytest

from sandbox.network import AddressPool
from sandbox.real.kubelet import podnetwork

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def await_(what: str, predicate, timeout: float = 60.0, step: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(step)
    pytest.fail(f"{what}: not after {timeout:.0f} s (last: {last!r})")


def chains(number: int) -> list[str]:
    found = []
    for table in ("nat", "filter"):
        rules = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True,
                               text=True).stdout
        found += [f"{table} {line}" for line in rules.splitlines()
                  if line.startswith(f"-N kmesh{number}-")
                  or f"-j kmesh{number}-" in line]
    return found


ETC_NETNS = pathlib.Path("/etc/netns")  # where `ip netns exec` finds a namespace's files


def resolv_dirs(number: int) -> list[str]:
    return sorted(p.name for p in ETC_NETNS.glob(f"kmesh{number}-*"))


@pytest.fixture(scope="module")
def cluster(kubelet_clusters):
    return kubelet_clusters(pod_network="netns")


@pytest.fixture(scope="module")
def kubectl(cluster):
    cp, _ = cluster

    def run(*args: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        out = subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), *args],
                             input=input, capture_output=True, text=True, timeout=timeout)
        if check:
            assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
        return out
    return run


def deployment(name: str, replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{
                                      "name": "app", "image": "docker.io/sandbox/app:1",
                                      "ports": [{"containerPort": 8080}]}]}}}}


def service(name: str, headless: bool = False) -> dict:
    spec = {"selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def ready_pods(kubectl, app: str) -> list[dict]:
    pods = json.loads(kubectl("get", "pods", "-l", f"app={app}", "-o", "json").stdout)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions") or [])]


def cluster_ip(kubectl, name: str) -> str:
    return json.loads(kubectl("get", "service", name, "-o", "json").stdout)["spec"]["clusterIP"]


def get_body(url: str) -> bytes:
    return urllib.request.urlopen(url, timeout=5).read()


def reaches(url: str) -> bool:
    try:
        return bool(get_body(url))
    except OSError:
        return False


@pytest.fixture(scope="module")
def web(cluster, kubectl):
    """Deployment `web` (the sandbox app on 8080) behind Service `web` port 80, and a
    client pod; the service proxy has the endpoint."""
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        deployment("web"), service("web"),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": "default",
                                                         "labels": {"app": "client"}},
         "spec": {"containers": [{"name": "sh", "image": "busybox",
                                  "command": ["sleep", "3600"]}]}}]}))
    pod = await_("web Ready", lambda: ready_pods(kubectl, "web"))[0]
    await_("client Ready", lambda: ready_pods(kubectl, "client"))
    ip = cluster_ip(kubectl, "web")
    await_("web's ClusterIP reaches it from the node", lambda: reaches(f"http://{ip}/"))
    return {"pod": pod, "ip": ip}


def exec_python(kubectl, pod: str, code: str, *args: str, container: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
    return kubectl("exec", pod, *(["-c", container] if container else []), "--",
                   sys.executable, "-c", code, *args, check=check)


FETCH = ("import sys, urllib.request\n"
         "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())\n")
RESOLVE = ("import socket, sys\n"
           "print(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET)}))\n")


def test_a_pod_reaches_a_service_by_its_cluster_name(cluster, kubectl, web):
    out = exec_python(kubectl, "client", FETCH, "http://web.default.svc.cluster.local:80/")
    assert out.stdout.strip()  # the app's answer, through DNS and the ClusterIP's DNAT
    for name in ("web", "web.default", "web.default.svc", "web.default.svc.cluster.local"):
        out = exec_python(kubectl, "client", RESOLVE, name)
        assert out.stdout.strip() == repr([web["ip"]]), name


def test_a_pods_resolv_conf_is_the_kubelets_cluster_first(cluster, kubectl, web):
    _, kubelet = cluster
    text = kubectl("exec", "client", "--", "cat", "/etc/resolv.conf").stdout
    assert text.splitlines() == [
        "search default.svc.cluster.local svc.cluster.local cluster.local",
        f"nameserver {kubelet.network.gateway}", "options ndots:5"]
    with open("/etc/resolv.conf") as f:  # the node's own is untouched
        assert f"nameserver {kubelet.network.gateway}" not in f.read()


def test_the_node_reaches_a_service_by_cluster_ip(web):
    assert get_body(f"http://{web['ip']}/")


def test_a_pod_reaches_its_own_service(kubectl, web):
    """Hairpin: the only endpoint is the caller; masqueraded, the answer comes back."""
    out = exec_python(kubectl, web["pod"]["metadata"]["name"], FETCH,
                      f"http://{web['ip']}:80/", container="app")
    assert out.stdout.strip()


def query(server: tuple[str, int], name: str, qtype: int = 1, tcp: bool = False) -> tuple:
    """(rcode, [A addresses]) of one question."""
    question = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"
    message = struct.pack("!6H", 0x1234, 0x0100, 1, 0, 0, 0) + question + \
        struct.pack("!2H", qtype, 1)
    if tcp:
        with socket.create_connection(server, timeout=5) as s:
            s.sendall(struct.pack("!H", len(message)) + message)
            size = struct.unpack("!H", s.recv(2))[0]
            reply = b""
            while len(reply) < size:
                reply += s.recv(size - len(reply))
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(message, server)
            reply = s.recv(4096)
    ident, flags, _, ancount = struct.unpack("!4H", reply[:8])
    assert ident == 0x1234 and flags & 0x8000
    offset, addresses = 12 + len(question) + 4, []
    for _ in range(ancount):
        rtype, _, _, size = struct.unpack("!2HIH", reply[offset + 2:offset + 12])
        if rtype == 1:
            addresses.append(socket.inet_ntoa(reply[offset + 12:offset + 12 + size]))
        offset += 12 + size
    return flags & 0xF, addresses


def test_dns_answers_services_and_refuses_other_names(cluster, kubectl, web):
    _, kubelet = cluster
    server = (kubelet.network.gateway, 53)
    assert query(server, "web.default.svc.cluster.local") == (0, [web["ip"]])
    assert query(server, "web.default.svc.cluster.local", tcp=True) == (0, [web["ip"]])
    assert query(server, "WEB.default.svc.cluster.local.".rstrip(".")) == (0, [web["ip"]])
    assert query(server, "web.default.svc.cluster.local", qtype=28) == (0, [])  # AAAA: none
    assert query(server, "nothere.default.svc.cluster.local") == (3, [])
    assert query(server, "web.other.svc.cluster.local") == (3, [])
    assert query(server, "example.com") == (3, [])


def test_a_headless_service_resolves_to_its_ready_endpoints(cluster, kubectl, web):
    _, kubelet = cluster
    kubectl("apply", "-f", "-", input=json.dumps(service("web-direct", headless=True) | {
        "spec": {"clusterIP": "None", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 8080}]}}))
    server = (kubelet.network.gateway, 53)
    expected = (0, [web["pod"]["status"]["podIP"]])
    await_("web-direct's endpoint in DNS",
           lambda: query(server, "web-direct.default.svc.cluster.local") == expected)


def test_a_service_without_endpoints_refuses(cluster, kubectl, web):
    kubectl("scale", "deployment", "web", "--replicas=0")

    def refused() -> bool:
        try:
            socket.create_connection((web["ip"], 80), timeout=3).close()
            return False
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    await_("web's ClusterIP refusing from the node", refused)
    probe = ("import socket, sys\n"
             "try:\n"
             "    socket.create_connection((sys.argv[1], 80), timeout=3)\n"
             "    print('connected')\n"
             "except ConnectionRefusedError:\n"
             "    print('refused')\n")
    assert exec_python(kubectl, "client", probe, web["ip"]).stdout.strip() == "refused"
    # the name stays: the Service exists, only its endpoints are gone
    assert exec_python(kubectl, "client", RESOLVE, "web").stdout.strip() == repr([web["ip"]])
    kubectl("scale", "deployment", "web", "--replicas=1")
    await_("web reached again", lambda: reaches(f"http://{web['ip']}/"))


def test_stop_removes_rules_dns_and_resolv_confs(cluster, web):
    _, kubelet = cluster
    number, gateway = kubelet.network.network, kubelet.network.gateway
    assert chains(number) and resolv_dirs(number)
    kubelet.stop()
    assert chains(number) == []
    assert resolv_dirs(number) == []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        with pytest.raises(OSError):  # the gateway address went with the bridge
            s.sendto(b"\0" * 12, (gateway, 53))
            s.settimeout(1)
            s.recv(512)


class NoServices:
    def add_listener(self, listener) -> None:
        pass

    def snapshot(self):
        raise AssertionError("not synced in this test")


def test_a_crashed_runs_chains_and_resolv_confs_are_removed_by_cleanup():
    """What a killed sandbox leaves (its chains hold jumps; /etc/netns/<pod netns>) goes by
    name, with the pod network's `cleanup` that `python -m sandbox down` and the next start
    on the same number run."""
    from sandbox.real.kubelet.serviceproxy import ServiceProxy
    pool = AddressPool()
    number = pool.network
    network = podnetwork.PodNetwork(pool, (f"127.{number}.0.1", 6443))
    try:
        network.start()
        proxy = ServiceProxy(NoServices(), network.bridge, f"{network.subnet}.0/24")
        proxy._restore(proxy._rules(()))  # the chains as a sync makes them
        for table, chain, spec in proxy._jumps:
            subprocess.run(["iptables", "-w", "-t", table, "-I", chain, "1", *spec, "-m",
                            "comment", "--comment", network.bridge], check=True)
        network.attach({"metadata": {"uid": "u1", "namespace": "default"}, "spec": {}})
        assert len(chains(number)) >= 5 + len(proxy._jumps)
        assert resolv_dirs(number) == [f"kmesh{number}-u1"]
        removed = podnetwork.cleanup(number)  # as after a crash: nobody stopped anything
        assert any("chain" in r for r in removed)
        assert chains(number) == []
        assert resolv_dirs(number) == []
    finally:
        network.release()
        pool.release()
