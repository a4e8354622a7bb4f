"""The sandbox as the node's kubelet for the real control plane: a Node that is Ready and
keeps its Lease fresh, pods the real scheduler binds to it run as local processes with a
kubelet's status, and `kubectl logs`, `exec` and `port-forward` reach them through the real
API server and the kubelet API on port 10250."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import urllib.request

import pytest

from sandbox.real.kubelet import Kubelet
from sandbox.real.kubelet.client import ApiStatus
from sandbox.testing import wait_until

NODE = "sandbox-node"


@pytest.fixture(scope="module")
def cluster(kubelet_clusters):
    return kubelet_clusters()


@pytest.fixture(scope="module")
def kubectl(cluster):
    cp, _ = cluster

    def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        out = subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), *args],
                             capture_output=True, text=True, timeout=timeout)
        if check:
            assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
        return out
    run.kubeconfig = str(cp.kubeconfig)
    return run


def get(cp, path: str) -> dict:
    code, body = cp.request("GET", path)
    assert code == 200, (path, body)
    return body


def deployment(name: str, image: str) -> str:
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": name, "namespace": "default"},
                       "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                "template": {"metadata": {"labels": {"app": name}},
                                             "spec": {"containers": [{
                                                 "name": "app", "image": image,
                                                 "ports": [{"containerPort": 8080}]}]}}}})


def pods_of(cp, app: str) -> list[dict]:
    return get(cp, f"/api/v1/namespaces/default/pods?labelSelector=app%3D{app}")["items"]


def ready_pod(cp, app: str) -> dict | None:
    for pod in pods_of(cp, app):
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
        if pod["status"].get("phase") == "Running" and conditions.get("Ready") == "True":
            return pod
    return None


@pytest.fixture(scope="module")
def web(cluster, kubectl):
    """A Deployment of the sandbox app, Running and Ready on the node."""
    cp, _ = cluster
    subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), "apply", "-f", "-"],
                   input=deployment("web", "docker.io/sandbox/app:1"), text=True, check=True,
                   capture_output=True)
    return wait_until(what="web Running and Ready",
                      predicate=lambda: ready_pod(cp, "web"), timeout=60)


def test_node_registers_ready_as_a_kubelet(cluster):
    cp, _ = cluster
    node = get(cp, f"/api/v1/nodes/{NODE}")
    status = node["status"]
    assert {"type": "InternalIP", "address": cp.address} in status["addresses"]
    assert status["nodeInfo"]["kubeletVersion"] == "v1.37.2"
    assert {"cpu", "memory", "pods"} <= set(status["capacity"])
    assert status["allocatable"] == status["capacity"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "KubeletReady"
    assert conditions["Ready"]["lastHeartbeatTime"]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
    assert list({c["type"]: c for c in status["conditions"]}) == [
        "MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]


def test_get_nodes_wide(cluster, kubectl):
    cp, _ = cluster
    wide = kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP",
                               "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert wide[1].split()[:3] == [NODE, "Ready", "<none>"]
    assert "v1.37.2" in wide[1] and cp.address in wide[1]


def test_node_lease_is_renewed(cluster):
    cp, _ = cluster
    path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"
    first = get(cp, path)
    assert first["spec"]["holderIdentity"] == NODE
    assert first["spec"]["leaseDurationSeconds"] == 40
    assert first["metadata"]["ownerReferences"][0]["kind"] == "Node"
    wait_until(what="the lease renewed", predicate=lambda: get(cp, path)["spec"]["renewTime"]
           != first["spec"]["renewTime"], timeout=25, interval=1)


def test_node_identity_is_judged_by_node_authorizer_and_noderestriction(cluster):
    _, kubelet = cluster
    with pytest.raises(ApiStatus) as refused:  # NodeRestriction: only its own Node object
        kubelet.node.client.request("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "another-node"}})
    assert refused.value.code == 403
    with pytest.raises(ApiStatus) as refused:  # Node authorizer: no secrets it has no pod for
        kubelet.node.client.request("GET", "/api/v1/namespaces/kube-system/secrets")
    assert refused.value.code == 403


def test_deployment_pod_runs_with_a_kubelets_status(cluster, web):
    cp, kubelet = cluster
    status = web["status"]
    ip = status["podIP"]
    # an address of the pod network (sandbox/real/kubelet/podnetwork.py) or of 127.N
    prefix = "10.244" if kubelet.pod_network == "netns" else "127"
    assert ip.startswith(f"{prefix}.{cp.addresses.network}.") and ip != cp.address
    assert status["podIPs"] == [{"ip": ip}]
    assert status["hostIP"] == cp.address and status["hostIPs"] == [{"ip": cp.address}]
    assert status["startTime"]
    # generateAPIPodStatus's order (pkg/kubelet/kubelet_pods.go), observedGeneration (GA 1.35)
    assert [c["type"] for c in status["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert {c["status"] for c in status["conditions"]} == {"True"}
    assert {c.get("observedGeneration") for c in status["conditions"]} == {web["metadata"]["generation"]}
    assert status["observedGeneration"] == web["metadata"]["generation"]
    (container,) = status["containerStatuses"]
    assert container["name"] == "app" and container["ready"] is True
    assert container["restartCount"] == 0
    assert container["image"] == "docker.io/sandbox/app:1" and container["imageID"]
    assert container["containerID"].startswith(("containerd://", "sandbox://"))
    assert "running" in container["state"]
    (proc,) = [p for p in kubelet.runtime.status() if p["name"] == web["metadata"]["name"]]
    cmdline = open(f"/proc/{proc['containers'][0]['pid']}/cmdline", "rb").read().split(b"\0")
    assert [b"--listen", ip.encode()] == cmdline[cmdline.index(b"--listen"):][:2]


def test_get_pods_wide_shows_ip_and_node(kubectl, web):
    out = kubectl("get", "pods", "-o", "wide", "-l", "app=web").stdout
    (row,) = [line.split() for line in out.splitlines()[1:]]
    assert row[0] == web["metadata"]["name"]
    assert row[1:3] == ["1/1", "Running"]
    assert web["status"]["podIP"] in row and NODE in row


def test_logs_through_the_real_api_server(kubectl, web):
    name, ip = web["metadata"]["name"], web["status"]["podIP"]
    assert f"listening on {ip} ports [8080]" in kubectl("logs", name).stdout
    with urllib.request.urlopen(f"http://{ip}:8080/logged", timeout=5) as r:
        assert r.status == 200
    last = wait_until(what="the request in the log", predicate=lambda: (
        lambda out: "/logged" in out and out)(kubectl("logs", name, "--tail=1").stdout), timeout=60)
    assert last.count("\n") == 1 and "listening" not in last
    assert "listening on" in kubectl("logs", name, "--since=1h").stdout


def test_logs_follow_through_the_real_api_server(cluster, web):
    """`kubectl logs -f --tail=0` shows requests made while it follows (the kubelet's
    containerLogs?follow=true&tailLines=0 through the API server)."""
    import queue
    import threading
    cp, _ = cluster
    name, ip = web["metadata"]["name"], web["status"]["podIP"]
    follow = subprocess.Popen(["kubectl", "--kubeconfig", str(cp.kubeconfig), "logs", "-f",
                               "--tail=0", name], stdout=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in follow.stdout], daemon=True).start()
    try:
        def followed():  # until the stream is open, a request may come before it: ask again
            with urllib.request.urlopen(f"http://{ip}:8080/followed", timeout=5):
                pass
            try:
                return lines.get(timeout=1)
            except queue.Empty:
                return None
        line = wait_until(what="a request in the followed log", predicate=followed, timeout=30)
        assert '"GET /followed HTTP/1.1" 200' in line
        assert follow.poll() is None  # still following
    finally:
        follow.terminate()
        follow.wait(10)


def test_exec_through_the_real_api_server(kubectl, web):
    name, ip = web["metadata"]["name"], web["status"]["podIP"]
    out = kubectl("exec", name, "--", "sh", "-c", 'echo "$POD_IP"; echo err >&2; exit 3',
                  check=False)
    assert out.stdout == f"{ip}\n"
    assert "err" in out.stderr
    assert out.returncode == 3


def test_port_forward_through_the_real_api_server(cluster, web):
    cp, _ = cluster
    pf = subprocess.Popen(["kubectl", "--kubeconfig", str(cp.kubeconfig), "port-forward",
                           web["metadata"]["name"], ":8080"], stdout=subprocess.PIPE, text=True)
    try:
        line = pf.stdout.readline()
        assert line.startswith("Forwarding from 127.0.0.1:"), line
        port = int(line.split(":")[1].split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/pf", timeout=10) as r:
            body = json.loads(r.read())
        assert body["pod"] == web["metadata"]["name"] and body["path"] == "/pf"
    finally:
        pf.terminate()
        pf.wait(10)


def test_kubelet_api_refuses_clients_without_a_cluster_certificate(cluster):
    cp, _ = cluster
    context = ssl.create_default_context(cafile=str(cp.ca.pair.cert))
    with socket.create_connection((cp.address, 10250), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            with context.wrap_socket(raw, server_hostname=cp.address) as tls:
                tls.sendall(b"GET /containerLogs/default/x/y HTTP/1.1\r\nHost: x\r\n\r\n")
                assert not tls.recv(100)  # TLS 1.3: the refusal arrives on the first read


def test_unknown_image_waits_with_err_image_pull(cluster, kubectl):
    cp, kubelet = cluster
    kubectl("run", "nowhere", "--image=registry.example/nowhere:1", "--restart=Never")

    def waiting():
        pod = get(cp, "/api/v1/namespaces/default/pods/nowhere")
        statuses = pod["status"].get("containerStatuses") or []
        return statuses and statuses[0]["state"].get("waiting", {}).get("reason") == \
            "ImagePullBackOff" and pod

    # ErrImagePull first, then ImagePullBackOff while the kubelet backs off (image_manager.go)
    pod = wait_until(what="nowhere waiting with ImagePullBackOff", predicate=waiting, timeout=60)
    assert pod["status"]["phase"] == "Pending"
    assert "ErrImagePull: failed to pull and unpack image" in \
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    assert "ImagePullBackOff" in kubectl("get", "pod", "nowhere").stdout
    logs = kubectl("logs", "nowhere", check=False)
    assert logs.returncode != 0
    assert ('container "nowhere" in pod "nowhere" is waiting to start: trying and failing to '
            'pull image' in logs.stderr)
    (proc,) = [p for p in kubelet.runtime.status() if p["name"] == "nowhere"]
    assert proc["containers"][0]["pid"] is None
    kubectl("delete", "pod", "nowhere", "--wait=true", timeout=60)


def test_deleting_the_deployment_stops_its_processes(cluster, kubectl):
    cp, kubelet = cluster
    subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), "apply", "-f", "-"],
                   input=deployment("short", "sandbox/app"), text=True, check=True,
                   capture_output=True)
    pod = wait_until(what="short Running and Ready",
                     predicate=lambda: ready_pod(cp, "short"), timeout=60)
    (proc,) = [p for p in kubelet.runtime.status() if p["name"] == pod["metadata"]["name"]]
    pid = proc["containers"][0]["pid"]
    assert os.path.exists(f"/proc/{pid}")
    kubectl("delete", "deployment", "short", "--wait=false")
    wait_until(what="short's pod gone from the API server",
               predicate=lambda: not pods_of(cp, "short"), timeout=60)
    assert not os.path.exists(f"/proc/{pid}")
    assert not [p for p in kubelet.runtime.status() if p["name"] == pod["metadata"]["name"]]


def test_init_container_runs_first_and_is_reported(cluster, kubectl):
    cp, _ = cluster
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "with-init"},
           "spec": {"initContainers": [{"name": "setup", "image": "busybox",
                                        "command": ["sh", "-c", "echo set up"]}],
                    "containers": [{"name": "app", "image": "sandbox/app",
                                    "ports": [{"containerPort": 8080}]}]}}
    subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), "apply", "-f", "-"],
                   input=json.dumps(pod), text=True, check=True, capture_output=True)

    def ready():
        got = get(cp, "/api/v1/namespaces/default/pods/with-init")
        conditions = {c["type"]: c["status"] for c in got["status"].get("conditions") or []}
        return conditions.get("Ready") == "True" and got

    got = wait_until(what="with-init Ready", predicate=ready, timeout=60)
    (init,) = got["status"]["initContainerStatuses"]
    assert init["name"] == "setup" and init["ready"] is True
    assert init["state"]["terminated"]["exitCode"] == 0
    assert init["state"]["terminated"]["reason"] == "Completed"
    assert kubectl("logs", "with-init", "-c", "setup").stdout == "set up\n"
    kubectl("delete", "pod", "with-init", "--wait=true", timeout=60)


def test_websocket_streams_reach_the_kubelet_unchanged(cluster, web):
    """The Node declares ExtendWebSocketsToKubelet, so the API server passes kubectl's
    WebSockets through (subresources.go checkNodeSupportsWebsockets)."""
    cp, kubelet = cluster
    node = get(cp, f"/api/v1/nodes/{NODE}")
    assert node["status"]["declaredFeatures"] == ["ExtendWebSocketsToKubelet"]
    assert kubelet.server.streams[("exec", "websocket")] >= 1
    assert kubelet.server.streams[("portforward", "websocket")] >= 1
    assert not kubelet.server.streams[("exec", "spdy")]


def test_without_the_declared_feature_the_api_server_speaks_spdy(control_planes):
    cp = control_planes()
    with Kubelet(cp, websockets=False) as kubelet:
        assert "declaredFeatures" not in get(cp, f"/api/v1/nodes/{NODE}")["status"]
        subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), "apply", "-f", "-"],
                       input=deployment("web", "sandbox/app"), text=True, check=True,
                       capture_output=True)
        pod = wait_until(what="web Ready", predicate=lambda: ready_pod(cp, "web"), timeout=60)
        out = subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), "exec",
                              pod["metadata"]["name"], "--", "echo", "over spdy"],
                             capture_output=True, text=True, timeout=60)
        assert out.stdout == "over spdy\n", out.stderr
        assert kubelet.server.streams[("exec", "spdy")] == 1
        assert not kubelet.server.streams[("exec", "websocket")]
        (proc,) = [p for p in kubelet.runtime.status() if p["name"] == pod["metadata"]["name"]]
        pid = proc["containers"][0]["pid"]
        assert os.path.exists(f"/proc/{pid}")
    assert not os.path.exists(f"/proc/{pid}")  # a stopped kubelet leaves no process behind


def test_a_field_selector_watch_sees_pods_leave_as_deleted(cluster, kubectl):
    """The real API server's filtered watch: a pod that starts matching status.phase=Pending
    is ADDED, one that leaves it DELETED with its previous content (the double does the same,
    tests/sandbox/test_pod_lifecycle.py)."""
    from sandbox.testing import WatchRecorder, kubectl_binary
    cp, _ = cluster
    rv = get(cp, "/api/v1/namespaces/default/pods")["metadata"]["resourceVersion"]
    watch = WatchRecorder(kubectl_binary(), "/api/v1/namespaces/default/pods?watch=1&"
                          f"fieldSelector=status.phase%3DPending&resourceVersion={rv}",
                          env=dict(os.environ, KUBECONFIG=str(cp.kubeconfig)))
    try:
        kubectl("run", "leaves-pending", "--image=sandbox/app")
        events = wait_until(what="DELETED when it leaves Pending", predicate=lambda: (
            lambda e: e if "DELETED" in e else None)(watch.of("default/leaves-pending")), timeout=60)
        assert events[0] == "ADDED" and events[-1] == "DELETED"
        (gone,) = [o for t, n, o in watch.events if t == "DELETED" and n == "default/leaves-pending"]
        assert gone["status"]["phase"] == "Pending"
    finally:
        watch.stop()
        kubectl("delete", "pod", "leaves-pending", "--wait=false", check=False)


@pytest.mark.parametrize("args,message", [
    (("pods", "--field-selector", "spec.foo=x"), "field label not supported: spec.foo"),
    (("pods", "--field-selector", "metadata.labels.app=web"),
     "field label not supported: metadata.labels.app"),
    (("deploy", "--field-selector", "spec.replicas=1"),
     '"spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'),
    (("pods", "--watch", "--field-selector", "spec.foo=x"), "field label not supported: spec.foo"),
], ids=["pod-field", "labels-as-field", "deployment-field", "watch"])
def test_unsupported_field_selectors_are_refused(kubectl, args, message):
    out = kubectl("get", *args, check=False, timeout=20)
    assert out.returncode != 0
    assert message in out.stderr


def test_qos_class_at_creation_matches_the_double(kubectl):
    """The real API server's QoS classes for the cases tests/sandbox/test_qos.py gives the
    double (a server-side dry run: the admitted pod, nothing runs)."""
    from tests.sandbox.test_qos import CASES
    for case, (resources, expected) in CASES.items():
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"qos-{case}"},
               "spec": {"containers": [{"name": "app", "image": "busybox",
                                        "command": ["sleep", "600"], "resources": resources}]}}
        out = subprocess.run(["kubectl", "--kubeconfig", kubectl.kubeconfig, "create",
                              "--dry-run=server", "-o", "json", "-f", "-"],
                             input=json.dumps(pod), capture_output=True, text=True, check=True)
        created = json.loads(out.stdout)
        assert created["status"]["qosClass"] == expected, case
        if "limits" in resources:
            assert created["spec"]["containers"][0]["resources"]["requests"].keys() >= \
                resources["limits"].keys()


def test_attach_through_the_real_api_server(cluster, kubectl):
    cp, _ = cluster
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echoer"},
           "spec": {"containers": [{"name": "cat", "image": "busybox", "command": ["cat"],
                                    "stdin": True}]}}
    subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), "apply", "-f", "-"],
                   input=json.dumps(pod), text=True, check=True, capture_output=True)
    try:
        wait_until(what="echoer Running",
                   predicate=lambda: get(cp, "/api/v1/namespaces/default/pods/echoer")[
            "status"].get("phase") == "Running", timeout=60)
        out = subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), "attach", "-i",
                              "echoer", "-c", "cat", "-q"], input="through attach\n",
                             capture_output=True, text=True, timeout=30)
        assert "through attach" in out.stdout, out.stderr
        assert cluster[1].server.streams[("attach", "websocket")] >= 1
    finally:
        kubectl("delete", "pod", "echoer", "--wait=false", check=False)
