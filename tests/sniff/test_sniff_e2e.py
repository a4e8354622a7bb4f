"""`kubectl mesh sniff` end to end: real kubectl, the sandbox, real Envoys, real tcpdump/tshark."""

from __future__ import annotations

import pathlib
import re
import signal
import time

import pytest

from kubectl_mesh.capture.pcap import read_file
from sandbox.cgroups import ROOT_FILE
from sandbox.testing import wait_until
from tests.sniff.conftest import GATEWAY_HOST, Traffic, tcpdumps_for, tshark, wait_gone

BASELINE_NAMESPACE = """
apiVersion: v1
kind: Namespace
metadata:
  name: psa
  labels: {istio-injection: enabled, pod-security.kubernetes.io/enforce: baseline}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: psa}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: sandbox/app:1, ports: [{containerPort: 3000}]}
"""

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def gateway(mesh) -> dict:
    return mesh.pod("istio-system", "app=istio-ingressgateway")


@pytest.fixture(scope="module")
def catalog_v2(mesh) -> list[dict]:
    return [mesh.pod("istioinaction", "app=catalog,version=v2", i) for i in (0, 1)]


def gateway_traffic(gateway: dict) -> Traffic:
    return Traffic(f"http://{gateway['status']['podIP']}:8080/items", GATEWAY_HOST)


def ref(pod: dict) -> str:
    return f"{pod['metadata']['name']}.{pod['metadata']['namespace']}"


def test_gateway_capture_holds_the_http_requests_and_tcpdumps_count(mesh, gateway, tmp_path):
    out = tmp_path / "gw.pcap"
    with gateway_traffic(gateway):
        result = mesh("deploy/istio-ingressgateway", "-n", "istio-system", "-o", str(out),
                      "--count", "40", "-f", "tcp port 8080")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    # istio-proxy runs as 1337 with ALL capabilities dropped (Istio's securityContext), so
    # auto mode explains why exec cannot capture and uses an ephemeral container.
    assert "via ephemeral (ephemeral container kubectl-mesh-sniff-" in err
    _, records = read_file(str(out))
    assert len(records) == 40
    assert "tcpdump: 40 packets captured" in err  # tcpdump's own count, relayed
    hosts = tshark("-r", str(out), "-Y", "http.request", "-T", "fields", "-e", "http.host")
    assert GATEWAY_HOST in hosts.split()
    assert not tcpdumps_for(gateway["status"]["podIP"])


def test_exec_in_the_gateways_istio_proxy_fails_like_on_a_real_cluster(mesh, gateway):
    spec = next(c for c in gateway["spec"]["containers"] if c["name"] == "istio-proxy")
    assert spec["securityContext"]["runAsUser"] == 1337
    result = mesh(ref(gateway), "--mode", "exec", "-o", "/dev/null")
    assert result.returncode == 1
    assert b"You don't have permission to perform this capture on that device" in result.stderr


def test_duration_stops_in_time_and_leaves_no_tcpdump(mesh, gateway, tmp_path):
    out = tmp_path / "d.pcap"
    started = time.monotonic()
    with gateway_traffic(gateway):
        result = mesh(ref(gateway), "-o", str(out), "--duration", "2s")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    # 2 s of packets, counted from tcpdump's first output: setting up the ephemeral
    # container first must not eat the capture (it takes seconds on a loaded machine).
    assert 2.0 <= elapsed < 12.0
    assert len(read_file(str(out))[1]) > 0, result.stderr
    assert wait_gone(lambda: tcpdumps_for(gateway["status"]["podIP"]), 5)


def _bytes_written(out: pathlib.Path) -> int:
    """The bytes in `-o out`'s temporary file (`.NAME.*.part` beside it) so far."""
    size = 0
    for part in out.parent.glob(f".{out.name}.*.part"):
        try:
            size += part.stat().st_size
        except FileNotFoundError:  # renamed into place meanwhile
            pass
    return size


# Ctrl-C in the quick loop; the other ending signals (same path, other exit codes) are slow.
@pytest.mark.parametrize("sig", [signal.SIGINT,
                                 pytest.param(signal.SIGTERM, marks=pytest.mark.slow),
                                 pytest.param(signal.SIGHUP, marks=pytest.mark.slow)],
                         ids=["ctrl-c", "sigterm", "sighup"])
def test_interrupted_capture_is_valid_and_cleaned_up(mesh, gateway, tmp_path, sig):
    out = tmp_path / "i.pcap"
    ip = gateway["status"]["podIP"]
    with gateway_traffic(gateway):
        proc = mesh.popen(ref(gateway), "-o", str(out))
        deadline = time.monotonic() + 20
        while not tcpdumps_for(ip) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tcpdumps_for(ip), "tcpdump never started"
        # Packets reach the file once tcpdump's ring is set up and its first block retires
        # (up to 1 s at this rate); the file is buffered, so it grows in 8 KiB steps. Until
        # the capture ends it is a temporary file beside -o (kubectl_mesh/capture/outfile.py).
        wait_until(lambda: _bytes_written(out), timeout=max(1.0, deadline - time.monotonic()),
                   interval=0.1, what="packets in the capture's temporary file")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err  # 130, 143, 129: after cleaning up
    assert len(read_file(str(out))[1]) > 0
    tshark("-r", str(out))  # a valid file: tshark reads it to the end without error
    assert wait_gone(lambda: tcpdumps_for(ip), 5), "tcpdump left running"


def test_filter_metacharacters_are_not_a_shell(mesh, gateway, tmp_path):
    marker = tmp_path / "pwned"
    result = mesh(ref(gateway), "-o", str(tmp_path / "x.pcap"), "--count", "1",
                  "-f", f"port 80; touch {marker}")
    assert result.returncode == 2
    assert b"syntax error" in result.stderr
    assert not marker.exists()


def test_missing_tcpdump_in_exec_mode(mesh, catalog_v2):
    result = mesh(ref(catalog_v2[0]), "--mode", "exec", "-c", "catalog", "-o", "/dev/null")
    assert result.returncode == 8, result.stderr
    assert b"tcpdump is not available" in result.stderr
    assert b"--mode ephemeral" in result.stderr


def test_istio_proxy_cannot_capture_like_real_tcpdump(mesh, catalog_v2):
    result = mesh(ref(catalog_v2[0]), "--mode", "exec", "-c", "istio-proxy", "-o", "/dev/null")
    assert result.returncode == 1
    assert b"You don't have permission to perform this capture on that device" in result.stderr


def test_missing_wireshark_suggests_o(mesh, gateway):
    result = mesh(ref(gateway), "--count", "1")  # no -o: live into Wireshark, not installed
    assert result.returncode == 8
    assert b"Wireshark was not found" in result.stderr and b"-o capture.pcap" in result.stderr


def test_exec_into_an_app_container_that_ships_tcpdump(mesh, sandbox, catalog_v2, tmp_path):
    pod = catalog_v2[1]
    name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
    sandbox.kubectl("annotate", "pod", name, "-n", ns, "sandbox.kubectl-mesh.io/tools=catalog=tcpdump")
    try:
        out = tmp_path / "app.pcap"
        with Traffic(f"http://{pod['status']['podIP']}:3000/items"):
            # `any`: in a pod's own namespace (`--pod-network netns`) the node's requests
            # to the app arrive on eth0, not lo (the sandbox intercepts no traffic)
            result = mesh(ref(pod), "-o", str(out), "--count", "10", "-i", "any")
        assert result.returncode == 0, result.stderr
        assert b"via exec (container catalog)" in result.stderr
        assert len(read_file(str(out))[1]) == 10
    finally:
        sandbox.kubectl("annotate", "pod", name, "-n", ns, "sandbox.kubectl-mesh.io/tools-")


def test_workload_capture_is_one_pcapng_with_an_interface_per_pod(mesh, catalog_v2, tmp_path):
    out = tmp_path / "multi.pcapng"
    traffic = [Traffic(f"http://{p['status']['podIP']}:3000/items") for p in catalog_v2]
    for t in traffic:
        t.__enter__()
    try:
        result = mesh("deploy/catalog-v2", "-n", "istioinaction", "-o", str(out),
                      "--duration", "4s")
    finally:
        for t in traffic:
            t.__exit__()
    assert result.returncode == 0, result.stderr
    names = tshark("-r", str(out), "-T", "fields", "-e", "frame.interface_name").split()
    expected = {f"{p['metadata']['name']}/istioinaction" for p in catalog_v2}
    assert set(names) == expected
    assert b"stays in pod" in result.stderr  # auto fell back to ephemeral containers, and says so
    for p in catalog_v2:
        assert wait_gone(lambda: tcpdumps_for(p["status"]["podIP"]), 5)


def test_ephemeral_container_is_left_with_its_process_ended(mesh, sandbox, gateway, tmp_path):
    out = tmp_path / "e.pcap"
    with gateway_traffic(gateway):
        result = mesh(ref(gateway), "--mode", "ephemeral", "-o", str(out), "--count", "5")
    assert result.returncode == 0, result.stderr
    assert len(read_file(str(out))[1]) == 5
    pod = sandbox.pods("istio-system", "app=istio-ingressgateway")[0]
    statuses = pod["status"]["ephemeralContainerStatuses"]
    assert statuses and all("terminated" in s["state"] for s in statuses)
    spec = pod["spec"]["ephemeralContainers"][-1]
    assert spec["targetContainerName"] == "istio-proxy"
    assert spec["securityContext"] == {"capabilities": {"add": ["NET_RAW"]}, "runAsUser": 0,
                                       "runAsGroup": 0, "runAsNonRoot": False}


def test_ephemeral_forbidden_gives_the_rbac_hint(mesh, gateway):
    config = mesh.kubeconfig_with_token("no-ephemeral-token", "dev",
                                        ["patch pods/ephemeralcontainers"])
    result = mesh(ref(gateway), "--mode", "ephemeral", "-o", "/dev/null",
                  env=mesh.env(KUBECONFIG=str(config)))
    assert result.returncode == 4, result.stderr
    assert b"patch" in result.stderr and b"pods/ephemeralcontainers" in result.stderr


def debug_pods(sandbox, namespace: str) -> list[str]:
    return [p["metadata"]["name"] for p in sandbox.pods(namespace)
            if p["metadata"]["name"].startswith("kubectl-mesh-sniff-")]


def container_pid(sandbox, pod: dict, container: str) -> int:
    meta = pod["metadata"]
    return next(c["pid"] for p in sandbox.status() for c in p["containers"]
                if (p["namespace"], p["name"], c["name"]) ==
                (meta["namespace"], meta["name"], container))


def test_node_mode_needs_privileged_then_uses_a_debug_pod_it_deletes(mesh, sandbox, gateway,
                                                                     tmp_path):
    assert mesh(ref(gateway), "--mode", "node", "-o", "/dev/null").returncode == 2
    out = tmp_path / "n.pcap"
    with gateway_traffic(gateway):
        result = mesh(ref(gateway), "--mode", "node", "--privileged", "-o", str(out),
                      "--count", "20", "-f", "tcp port 8080")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    # The PID came from scanning the node's /proc for the containerd:// ID's cgroup.
    status = next(s for s in sandbox.pods("istio-system", "app=istio-ingressgateway")[0]
                  ["status"]["containerStatuses"] if s["name"] == "istio-proxy")
    assert status["containerID"].startswith("containerd://")
    pid = container_pid(sandbox, gateway, "istio-proxy")
    assert "via node (debug pod kubectl-mesh-sniff-" in err
    assert f"entering pid {pid} (container istio-proxy)" in err
    assert len(read_file(str(out))[1]) == 20
    # ... and it is the gateway's network namespace: its traffic, nobody else's.
    ip = gateway["status"]["podIP"]
    hosts = tshark("-r", str(out), "-Y", "http.request", "-T", "fields", "-e", "http.host")
    assert GATEWAY_HOST in hosts.split()
    pairs = tshark("-r", str(out), "-T", "fields", "-e", "ip.src", "-e", "ip.dst").split("\n")
    assert all(ip in line.split("\t") for line in pairs if line), pairs
    assert re.search(r"debug pod kubectl-mesh-sniff-\w+\.istio-system deleted", err)
    assert wait_gone(lambda: debug_pods(sandbox, "istio-system"), 10)


def test_node_mode_without_a_process_for_the_container_id_says_so(mesh, sandbox, catalog_v2):
    """A process whose cgroup does not name its container ID (a runtime whose layout we do not
    know): the lookup finds nothing, says which ID, and the debug pod is still deleted."""
    pod = catalog_v2[0]
    status = next(s for s in pod["status"]["containerStatuses"]
                  + pod["status"].get("initContainerStatuses", []) if s["name"] == "istio-proxy")
    hexid = status["containerID"].split("://", 1)[1]
    root = pathlib.Path((sandbox.state / ROOT_FILE).read_text())
    scope = next(root.rglob(f"cri-containerd-{hexid}.scope"))
    # every process of the container (on real Istio pilot-agent and its Envoy) moved out of
    # its scope, still running
    pids = (scope / "cgroup.procs").read_text().split()
    assert str(container_pid(sandbox, pod, "istio-proxy")) in pids
    for pid in pids:
        (root / "cgroup.procs").write_text(pid)
    try:
        result = mesh(ref(pod), "--mode", "node", "--privileged", "-o", "/dev/null")
    finally:
        for pid in pids:
            try:
                (scope / "cgroup.procs").write_text(pid)
            except OSError:
                pass  # the process ended meanwhile
    err = result.stderr.decode()
    assert result.returncode == 3, err  # NOT_FOUND
    assert (f"no process on the node is in a cgroup of container ID {status['containerID']} "
            f"(container istio-proxy of pod {ref(pod)})") in err
    assert "cgroup layout we do not recognise" in err and "--mode ephemeral" in err
    assert err.strip().splitlines()[-1].startswith("error: no process on the node"), err
    assert "Traceback" not in err and "deleted" in err
    assert wait_gone(lambda: debug_pods(sandbox, "istioinaction"), 10)


def test_node_mode_exec_forbidden_gives_the_rbac_hint_and_deletes_the_debug_pod(mesh, sandbox,
                                                                                 gateway):
    config = mesh.kubeconfig_with_token("no-exec-token", "noexec", ["create pods/exec"])
    result = mesh(ref(gateway), "--mode", "node", "--privileged", "-o", "/dev/null",
                  env=mesh.env(KUBECONFIG=str(config)))
    err = result.stderr.decode()
    assert result.returncode == 4, err
    assert "pods/exec" in err and "node mode execs into its debug pod" in err
    assert wait_gone(lambda: debug_pods(sandbox, "istio-system"), 10)


@pytest.fixture(scope="module")
def baseline_pod(mesh, sandbox) -> dict:
    """A pod (app + injected sidecar, both baseline-clean) in a namespace enforcing baseline:
    with Istio CNI, as such namespaces need (istio-init's NET_ADMIN is not baseline), the
    injector adds istio-validation, which runs as 1337 without capabilities."""
    cni = sandbox.state / "istio-cni"
    cni.write_text("true")
    try:
        sandbox.kubectl("apply", "-f", "-", input=BASELINE_NAMESPACE)
        pod = sandbox.wait_for(lambda: next(iter(
            p for p in sandbox.pods("psa", "app=web") if p["status"].get("phase") == "Running"),
            None), timeout=60, what="the pod in namespace psa Running")
    finally:
        cni.unlink()
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["istio-validation", "istio-proxy"]
    return pod


# A sidecar pod in a Pod Security "baseline" namespace needs Istio CNI (istio-validation, no
# NET_ADMIN): the sandbox istiod's injector has that mode, the real install here no CNI plugin.
NEEDS_CNI = ("an injected pod in a baseline namespace needs Istio CNI, which the real-Istio "
             "sandbox does not install (istio-init's NET_ADMIN is refused)")


@pytest.mark.sandbox_istiod_only(NEEDS_CNI)
def test_pod_security_refuses_the_ephemeral_container_and_auto_mode_explains(mesh, sandbox,
                                                                             baseline_pod):
    result = mesh("deploy/web", "-n", "psa", "-o", "/dev/null")
    err = result.stderr.decode()
    assert result.returncode == 4, err  # FORBIDDEN
    assert 'violates PodSecurity "baseline:latest": non-default capabilities (container ' \
           '"kubectl-mesh-sniff-' in err
    assert '"NET_RAW" in securityContext.capabilities.add' in err
    assert 'namespace psa enforces Pod Security "baseline"' in err
    assert "--mode exec -c CONTAINER" in err and "enforce=privileged" in err
    assert "tried before: " in err and "container istio-proxy runs as uid 1337" in err
    pod = sandbox.pods("psa", "app=web")[0]
    assert not pod["spec"].get("ephemeralContainers")  # refused, so nothing was left behind


@pytest.mark.sandbox_istiod_only(NEEDS_CNI)
def test_pod_security_refuses_the_node_debug_pod(mesh, sandbox, baseline_pod):
    result = mesh(ref(baseline_pod), "--mode", "node", "--privileged", "-o", "/dev/null")
    err = result.stderr.decode()
    assert result.returncode == 4, err
    assert "host namespaces (hostNetwork=true, hostPID=true)" in err
    assert 'privileged (container "sniff" must not set securityContext.privileged=true)' in err
    assert "a privileged hostPID/hostNetwork debug pod" in err and "enforce=privileged" in err
    assert [p["metadata"]["name"] for p in sandbox.pods("psa")] == \
        [baseline_pod["metadata"]["name"]]  # no debug pod was created


@pytest.fixture
def app_with_tcpdump(sandbox, catalog_v2):
    """catalog-v2 #1, whose app container ships tcpdump (exec mode captures there)."""
    pod = catalog_v2[1]
    name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
    sandbox.kubectl("annotate", "pod", name, "-n", ns, "sandbox.kubectl-mesh.io/tools=catalog=tcpdump")
    try:
        yield pod
    finally:
        sandbox.kubectl("annotate", "pod", name, "-n", ns, "sandbox.kubectl-mesh.io/tools-")


def _handles_sigterm(pid: int) -> bool:
    """tcpdump has installed its SIGTERM handler (bit 15 of SigCgt): stopped from now on,
    it reports its counts. Before that, a stop kills it silently, as on any node."""
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((int(l.split()[1], 16) for l in status.splitlines()
                   if l.startswith("SigCgt:")), 0)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _started(ip: str, proc, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not any(
            _handles_sigterm(pid) for pid in tcpdumps_for(ip)):
        time.sleep(0.1)
    assert any(_handles_sigterm(pid) for pid in tcpdumps_for(ip)), \
        f"tcpdump never started: {proc.stderr.read() if proc.poll() is not None else ''}"


def test_quiet_exec_capture_stopped_with_ctrl_c_reports_tcpdumps_count(mesh, app_with_tcpdump,
                                                                        tmp_path):
    """A kubelet leaves exec'd processes running when the client goes; a quiet tcpdump would
    never notice. sniff closes its stdin instead: tcpdump gets SIGINT, reports, exits."""
    ip = app_with_tcpdump["status"]["podIP"]
    proc = mesh.popen(ref(app_with_tcpdump), "--mode", "exec", "-f", "udp port 9",
                      "-o", str(tmp_path / "quiet.pcap"))
    _started(ip, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"via exec (container catalog); tcpdump: 0 packets captured" in err
    assert wait_gone(lambda: tcpdumps_for(ip), 5), "tcpdump left running"


@pytest.mark.parametrize("mode", ["exec", pytest.param("ephemeral", marks=pytest.mark.slow)])
def test_killed_sniff_leaves_no_tcpdump_behind(mesh, app_with_tcpdump, tmp_path, mode):
    """The lost-connection path: sniff dies without running any cleanup (SIGKILL), its
    connections to the API server drop. The exec'd tcpdump (exec mode) must end through its
    stdin gate; in ephemeral mode the debug container's gate ends the container too."""
    ip = app_with_tcpdump["status"]["podIP"]
    proc = mesh.popen(ref(app_with_tcpdump), "--mode", mode, "-f", "udp port 9",
                      "-o", str(tmp_path / f"{mode}.pcap"))
    _started(ip, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert wait_gone(lambda: tcpdumps_for(ip), 10), f"tcpdump left running ({mode} mode)"
