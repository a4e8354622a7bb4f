"""The real backend with `--pod-network netns`: each pod in a network namespace of its own on
the node's bridge (sandbox/real/kubelet/podnetwork.py), reached as a CRI runtime reaches it.

What a broken pod network gets wrong: pods sharing the host's namespace (two Envoys cannot
both hold 127.0.0.1:15000, exec sees the host's sockets), a port-forward dialling the host's
localhost (another pod's, or nobody's, admin), addresses that do not route, and namespaces,
links or iptables rules left behind by `down`, a SIGTERM or a crash."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
import yaml

from sandbox.network import AddressPool
from sandbox.real.kubelet import Kubelet, podnetwork
from sandbox.testing import (ROOT, MeshCli, RunningSandbox, kubectl_binary, pid_alive,
                             wait_until)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

ADMIN_LISTEN = "0100007F:3A98"  # /proc/net/tcp: 127.0.0.1:15000
LISTEN = "0A"


def network_objects(number: int) -> list[str]:
    """Namespaces, links and iptables rules of pod network `number` on this host."""
    bridge, ns_prefix, veth_prefix = podnetwork.names(number)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found = [f"netns {line.split()[0]}" for line in namespaces.splitlines()
             if line.startswith(ns_prefix)]
    for line in subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                               text=True).stdout.splitlines():
        name = line.split(": ")[1].split("@")[0]
        if name == bridge or name.startswith(veth_prefix):
            found.append(f"link {name}")
    for table in ("nat", "filter"):
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True,
                               text=True).stdout
        found += [r for r in rules.splitlines() if f"--comment {bridge} " in r + " "
                  or r.startswith(f"-N {bridge}-")]  # the service proxy's chains
    if os.path.isdir("/etc/netns"):  # pods' resolv.conf (sandbox/real/kubelet/dns.py)
        found += [f"/etc/netns/{d}" for d in os.listdir("/etc/netns") if d.startswith(ns_prefix)]
    return found


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    with RunningSandbox(tmp_path_factory.mktemp("netns-sb") / "state", backend="real",
                        pod_network="netns") as s:
        yield s


@pytest.fixture(scope="module")
def number(sb) -> int:
    return int((sb.state / podnetwork.RECORD).read_text())


def pods_by_app(sb) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in sb.pods():
        out.setdefault(p["metadata"]["labels"]["app"], []).append(p)
    return out


def exec_in(sb, pod: dict, container: str, *command: str) -> str:
    m = pod["metadata"]
    return sb.kubectl("exec", "-n", m["namespace"], m["name"], "-c", container, "--",
                      *command).stdout


def listening(proc_net_tcp: str) -> set[str]:
    return {line.split()[1] for line in proc_net_tcp.splitlines()[1:] if line.split()[3] == LISTEN}


def test_each_pod_has_a_namespace_and_an_address_of_the_node_cidr(sb, number):
    pods = sb.pods()
    assert len(pods) == 5
    cidr = ipaddress.ip_network(f"10.244.{number}.0/24")
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == len(ips)
    assert all(ipaddress.ip_address(ip) in cidr for ip in ips), ips
    assert all(p["status"]["podIPs"] == [{"ip": p["status"]["podIP"]}] for p in pods)
    objects = network_objects(number)
    for p in pods:  # named after the pod UID
        assert f"netns kmesh{number}-{p['metadata']['uid']}" in objects
    assert f"link kmesh{number}" in objects


def test_exec_runs_in_the_pods_namespace(sb):
    catalog = pods_by_app(sb)["catalog"][0]
    addresses = exec_in(sb, catalog, "catalog", "ip", "-o", "-4", "addr", "show")
    assert [line.split()[1] for line in addresses.splitlines()] == ["lo", "eth0"]
    assert f"inet {catalog['status']['podIP']}/24" in addresses
    assert "127.0.0.1/8" in addresses


def test_two_pods_hold_the_same_ports(sb):
    """Envoy's admin on 127.0.0.1:15000 in every proxy: impossible in one namespace."""
    proxies = [(p, "istio-proxy") for app in ("catalog", "istio-ingressgateway")
               for p in pods_by_app(sb)[app]]
    assert len(proxies) == 4
    for pod, container in proxies:
        tcp = exec_in(sb, pod, container, "cat", "/proc/net/tcp")
        assert ADMIN_LISTEN in listening(tcp), (pod["metadata"]["name"], tcp)
        # only this pod's sockets: none on another pod's address
        local = {line.split()[1].split(":")[0] for line in tcp.splitlines()[1:]}
        mine = socket.inet_aton(pod["status"]["podIP"])[::-1].hex().upper()
        assert local <= {"0100007F", "00000000", mine}, (pod["metadata"]["name"], local)


def test_host_and_pods_reach_pods_by_ip_and_pods_reach_the_api_server(sb):
    apps = pods_by_app(sb)
    a, b = apps["catalog"][0], apps["catalog"][1]
    # the node (this test process) → a pod's app port
    body = urllib.request.urlopen(f"http://{b['status']['podIP']}:3000/", timeout=5).read()
    assert body
    # pod → pod, and pod → the API server as the `kubernetes` Service's ClusterIP
    probe = ("import socket,sys\n"
             "for host, port in ((sys.argv[1], 3000), ('10.96.0.1', 443)):\n"
             "    socket.create_connection((host, port), timeout=5).close()\n"
             "print('ok')\n")
    assert exec_in(sb, a, "catalog", sys.executable, "-c", probe,
                   b["status"]["podIP"]).strip() == "ok"


def test_port_forward_reaches_the_pods_own_envoy_admin(sb):
    for app in ("catalog", "istio-ingressgateway"):
        pod = pods_by_app(sb)[app][0]
        m = pod["metadata"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            local = s.getsockname()[1]
        forward = subprocess.Popen(
            [kubectl_binary(), "port-forward", "-n", m["namespace"], m["name"],
             f"{local}:15000"], env=sb.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: _connects(local), timeout=20)
            info = json.loads(urllib.request.urlopen(
                f"http://127.0.0.1:{local}/server_info", timeout=5).read())
            assert info["node"]["id"].split("~")[2].startswith(m["name"] + "."), info["node"]
        finally:
            forward.terminate()
            forward.wait(10)


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_kubectl_mesh_reads_each_pods_envoy(sb):
    """`kubectl mesh routes` goes through the real API server's port-forward to the pod's
    own 127.0.0.1:15000: the sidecar has its inbound route, the gateway none."""
    mesh = MeshCli(sb)
    apps = pods_by_app(sb)
    outputs = {}
    for app in ("catalog", "istio-ingressgateway"):
        m = apps[app][0]["metadata"]
        out = mesh("routes", "-n", m["namespace"], m["name"])
        assert out.returncode == 0, out.stderr
        outputs[app] = out.stdout
    assert "inbound|3000" in outputs["catalog"]
    assert "inbound|" not in outputs["istio-ingressgateway"]


def test_down_leaves_no_namespace_link_or_rule(sb, number):
    assert network_objects(number)
    sb.down()
    assert network_objects(number) == []


def test_a_killed_sandboxs_network_is_removed_by_down(tmp_path):
    sandbox = RunningSandbox(tmp_path / "state", backend="real", pod_network="netns").up()
    try:
        number = int((sandbox.state / podnetwork.RECORD).read_text())
        pid = int((sandbox.state / "sandbox.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), timeout=10)
        assert network_objects(number)  # nobody removed them
    finally:
        sandbox.down()
    assert network_objects(number) == []


@pytest.mark.parametrize("ending", ["SIGTERM", "owner killed"])
def test_a_sandbox_ended_without_down_removes_its_network(tmp_path, ending):
    """A SIGTERM (a CI job cancelled), or the end of the process that owns it (a test run
    killed: `--owner`), stops the sandbox, and the stop removes every namespace, link and
    rule: no `down` needed."""
    state = tmp_path / "state"
    owner = subprocess.Popen(["sleep", "600"])
    try:
        subprocess.run([sys.executable, "-m", "sandbox", "up", "--detach", "--state", str(state),
                        "--timeout", "60", "--owner", str(owner.pid), "--backend", "real",
                        "--pod-network", "netns"], cwd=ROOT, check=True, capture_output=True,
                       timeout=210)
        number = int((state / podnetwork.RECORD).read_text())
        pid = int((state / "sandbox.pid").read_text())
        assert network_objects(number)
        if ending == "SIGTERM":
            os.kill(pid, signal.SIGTERM)
        else:
            owner.kill()
        wait_until(lambda: not pid_alive(pid), timeout=60, what="the sandbox's end")
        assert network_objects(number) == []
    finally:
        owner.kill()
        owner.wait()
        subprocess.run([sys.executable, "-m", "sandbox", "down", "--state", str(state)],
                       cwd=ROOT, capture_output=True, timeout=60)


def test_a_new_pod_network_removes_what_a_crashed_one_left():
    """At start, by name: what a sandbox that held the same network number left."""
    pool = AddressPool()
    number = pool.network
    bridge, ns_prefix, veth_prefix = podnetwork.names(number)
    network = podnetwork.PodNetwork(pool, (f"127.{number}.0.1", 6443))
    try:
        subprocess.run(["ip", "netns", "add", f"{ns_prefix}stale"], check=True)
        subprocess.run(["ip", "link", "add", f"{veth_prefix}9", "type", "veth", "peer", "name",
                        "eth0", "netns", f"{ns_prefix}stale"], check=True)
        subprocess.run(["iptables", "-t", "nat", "-A", "PREROUTING", "-i", bridge, "-m",
                        "comment", "--comment", bridge, "-j", "RETURN"], check=True)
        assert len(network_objects(number)) == 3
        network.start()
        objects = network_objects(number)
        assert f"netns {ns_prefix}stale" not in objects
        assert f"link {veth_prefix}9" not in objects
        assert len(objects) == 3  # the bridge, the DNAT and the FORWARD rule, new
        pod = {"metadata": {"uid": "u1"}, "spec": {}}
        address = network.attach(pod)
        assert address.ip == f"10.244.{number}.2" and address.netns == f"{ns_prefix}u1"
        # the node dials inside the pod's namespace: its localhost is not the host's
        server = address.inside(lambda: socket.create_server(("127.0.0.1", 0)))
        port = server.getsockname()[1]
        with server, address.dial(port, 2):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2)
        network.detach(address)
        assert f"netns {ns_prefix}u1" not in network_objects(number)
    finally:
        network.release()
        pool.release()
    assert network_objects(number) == []


IN_CLUSTER_ISTIOD = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}},
    {"apiVersion": "v1", "kind": "ServiceAccount",
     "metadata": {"name": "istiod", "namespace": "istio-system"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
     "metadata": {"name": "istiod-test"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                 "name": "cluster-admin"},
     "subjects": [{"kind": "ServiceAccount", "name": "istiod", "namespace": "istio-system"}]},
    {"apiVersion": "v1", "kind": "Pod",
     "metadata": {"name": "istiod", "namespace": "istio-system", "labels": {"app": "istiod"}},
     "spec": {"serviceAccountName": "istiod",
              "containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.28.0"}]}},
]


@pytest.mark.parametrize("pod_network", ["netns", "loopback"])
def test_a_pod_of_a_kubelet_started_directly_reaches_the_api_server_in_cluster(
        control_planes, pod_network):
    """Not through `sandbox up` (no pods' kubeconfig): the sandbox istiod in a pod reads the
    cluster as in-cluster clients do – KUBERNETES_SERVICE_HOST/PORT and its service account's
    projected token and ca.crt – and creates its CA Secret. In a namespace of its own the
    variables name the ClusterIP (DNAT'ed on the bridge): the admin kubeconfig's 127.N.0.1
    reaches nothing there; in the host's namespace, the API server itself."""
    cp = control_planes()
    with Kubelet(cp, pod_network=pod_network):
        subprocess.run([kubectl_binary(), "--kubeconfig", str(cp.kubeconfig), "apply", "-f",
                        "-"], input=yaml.safe_dump_all(IN_CLUSTER_ISTIOD), text=True,
                       check=True, capture_output=True)
        secret = "/api/v1/namespaces/istio-system/secrets/istio-ca-secret"
        wait_until(lambda: cp.request("GET", secret)[0] == 200, timeout=90,
                   what="istiod's istio-ca-secret", interval=0.5)
        out = subprocess.run([kubectl_binary(), "--kubeconfig", str(cp.kubeconfig), "exec",
                              "-n", "istio-system", "istiod", "--", "printenv",
                              "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"],
                             capture_output=True, text=True, timeout=30)
        expected = [podnetwork.SERVICE_IP, str(podnetwork.SERVICE_PORT)] \
            if pod_network == "netns" else [cp.address, "6443"]
        assert out.stdout.split() == expected, out.stderr


def test_a_pod_network_that_cannot_be_made_is_one_line_and_leaves_nothing(tmp_path):
    """`ip` refusing (no CAP_NET_ADMIN, as in an unprivileged container): `sandbox up` says so
    in one line naming the way out, exits 1, and leaves no process or pod network behind."""
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "ip").write_text("#!/bin/sh\n[ \"$2\" = list ] && exit 0\n"
                             "echo 'RTNETLINK answers: Operation not permitted' >&2; exit 2\n")
    (stub / "ip").chmod(0o755)
    state = tmp_path / "state"
    out = subprocess.run([sys.executable, "-m", "sandbox", "up", "--state", str(state),
                          "--backend", "real", "--pod-network", "netns"], cwd=ROOT,
                         capture_output=True, text=True, timeout=210,
                         env=dict(os.environ, PATH=f"{stub}:{os.environ['PATH']}"))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    error = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Operation not permitted" in error[0] \
        and "--pod-network loopback" in error[0], out.stderr
    assert not (state / "sandbox.pid").exists()
    number = int((state / podnetwork.RECORD).read_text())
    assert network_objects(number) == []
