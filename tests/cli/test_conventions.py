"""The kubectl plugin conventions every command shares, each through real kubectl
(`kubectl mesh ...`) against the sandbox's default scenario: help and usage, every target form,
the error cases with their one-line messages and exit codes, kubeconfig handling, the
WebSocket-refused fallback, closed pipes, --debug, Ctrl-C and colour.

The probe is `kubectl mesh listeners TARGET --port 15006` (8080 for the gateway): the listener
address it prints is the chosen pod's IP, which is compared with `kubectl get pods`."""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import pty
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from sandbox.testing import PodPort, envoy_pid, kubectl_binary

NS = "istioinaction"
BIN = pathlib.Path(sys.executable).parent

# Added to the default scenario for this module: a StatefulSet and a DaemonSet that share the
# name `web` (so a bare `web` is ambiguous), a Deployment scaled to 0, and a pod whose command
# does not exist (phase Failed).
EXTRA = f"""
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web, namespace: {NS}}}
spec:
  replicas: 2
  serviceName: web
  selector: {{matchLabels: {{app: web-sts}}}}
  template:
    metadata: {{labels: {{app: web-sts}}}}
    spec:
      containers: [{{name: web, image: nginx, ports: [{{containerPort: 8000}}]}}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: web, namespace: {NS}}}
spec:
  selector: {{matchLabels: {{app: web-ds}}}}
  template:
    metadata: {{labels: {{app: web-ds}}}}
    spec:
      containers: [{{name: web, image: nginx, ports: [{{containerPort: 8001}}]}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: idle, namespace: {NS}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: idle}}}}
  template:
    metadata: {{labels: {{app: idle}}}}
    spec:
      containers: [{{name: idle, image: nginx, ports: [{{containerPort: 8002}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: broken, namespace: {NS}}}
spec:
  containers: [{{name: app, image: busybox, command: [/no/such/binary]}}]
"""


@pytest.fixture(scope="module")
def extra(sandbox):
    sandbox.kubectl("apply", "-f", "-", input=EXTRA)

    def settled():
        pods = {p["metadata"]["name"]: p for p in sandbox.pods(NS)}
        ready = [n for n, p in pods.items() if n.startswith("web-") and all(
            c.get("ready") for c in p["status"].get("containerStatuses") or [{}])]
        broken = pods.get("broken", {}).get("status", {}).get("phase")
        return len(ready) == 3 and broken == "Failed"

    sandbox.wait_for(settled, timeout=30, what="web pods ready and the broken pod Failed")
    return sandbox


def pods_by_ip(sandbox) -> dict[str, str]:
    """podIP -> `name.namespace`, from `kubectl get pods -A`."""
    return {p["status"]["podIP"]: f"{p['metadata']['name']}.{p['metadata']['namespace']}"
            for p in sandbox.pods() if p.get("status", {}).get("podIP")}


def names(sandbox, resource: str, namespace: str, selector: str | None = None) -> list[str]:
    args = ["get", resource, "-n", namespace, "-o", "jsonpath={.items[*].metadata.name}"]
    return sorted(sandbox.kubectl(*args, *(["-l", selector] if selector else [])).stdout.split())


def probe(mesh, *args: str, env: dict | None = None):
    """(result, the pod IP in the proxy's node id) of `kubectl mesh bootstrap ARGS -o json`:
    which pod's Envoy answered (`sidecar~IP~pod.ns~...`, the id pilot-agent and the sandbox
    both give; a listener address would not do on real Istio, which binds 0.0.0.0)."""
    out = mesh("bootstrap", *args, "-o", "json", env=env)
    assert out.returncode == 0, (args, out.stderr)
    ips = set(re.findall(r'"id":\s*"(?:sidecar|router)~([^~"]+)~', out.stdout))
    assert len(ips) == 1, (args, out.stdout[:2000])
    return out, ips.pop()


def concurrently(fn, cases: list) -> list:
    """fn(case) for every case at once (each is a separate `kubectl mesh`): keeps the module
    quick on a busy machine. Results in case order; the first failure is raised."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(fn, cases))


def one_line_error(out) -> str:
    """The stderr of a failed command: exactly one line, `error: ...`, no traceback."""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert out.stdout == ""
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_kubeconfig(sandbox, path: pathlib.Path, *, token: str | None = None,
                     server: str | None = None) -> str:
    doc = yaml.safe_load(sandbox.kubeconfig.read_text())
    if token:  # the token alone (the real backend's admin is a client certificate)
        doc["users"][0]["user"] = {"token": token}
    if server:
        doc["clusters"][0]["cluster"]["server"] = server
    path.write_text(yaml.safe_dump(doc))
    return str(path)


# ---- help, usage, version --------------------------------------------------------------------


def test_help_version_and_unknown_command(mesh):
    top = mesh("--help")
    assert top.returncode == 0 and top.stderr == ""
    assert "Usage:\n  kubectl mesh <command> [flags]" in top.stdout
    for name in ("routes", "clusters", "listeners", "endpoints", "secrets", "version"):
        assert f"\n  {name} " in top.stdout, name
    routes = mesh("routes", "--help")
    assert routes.returncode == 0 and routes.stdout.startswith("usage: kubectl mesh routes ")
    assert "--kubeconfig" in routes.stdout and "--context" in routes.stdout
    version = mesh("version")
    assert (version.returncode, version.stderr) == (0, "")
    assert version.stdout.startswith("kubectl-mesh ") and version.stdout.count("\n") == 1
    nope = mesh("nope")
    assert nope.returncode == 2
    line = one_line_error(nope)
    assert "kubectl mesh nope: unknown command; available: " in line
    assert {"routes", "clusters", "listeners", "version", "help"} <= set(
        line.split("available: ")[1].replace(",", " ").split())


# ---- target forms ----------------------------------------------------------------------------


def test_pod_targets(mesh, extra):
    ips = pods_by_ip(extra)
    v2 = names(extra, "pods", NS, "app=catalog,version=v2")
    pod = v2[1]  # not the first: a wrong "first pod of the workload" would show
    forms = [[pod, "-n", NS], [f"pod/{pod}", "-n", NS], [f"po/{pod}", f"--namespace={NS}"],
             [f"{pod}.{NS}"], [f"pod/{pod}.{NS}"]]
    for form, (out, ip) in zip(forms, concurrently(lambda args: probe(mesh, *args), forms)):
        assert ips[ip] == f"{pod}.{NS}", form
        assert "using pod" not in out.stderr, form


WORKLOAD_TARGETS = [  # (target, the selector of the pods behind it, how many)
    ("deploy/catalog-v2", "app=catalog,version=v2", 2),
    ("deployment/catalog-v2", "app=catalog,version=v2", 2),
    ("catalog-v2", "app=catalog,version=v2", 2),  # a bare workload name
    ("svc/catalog", "app=catalog", 3),
    ("sts/web", "app=web-sts", 2),
    ("statefulset/web", "app=web-sts", 2),
    ("ds/web", "app=web-ds", 1),
    ("deploy/catalog.istioinaction", "app=catalog,version=v1", 1),
]


def test_workload_targets_pick_a_pod_behind_them(mesh, extra):
    ips = pods_by_ip(extra)

    def check(case):
        target, selector, count = case
        expected = names(extra, "pods", NS, selector)
        assert len(expected) == count, case
        args = [target] if target.endswith(f".{NS}") else [target, "-n", NS]
        out, ip = probe(mesh, *args)
        chosen = ips[ip]
        assert chosen == f"{expected[0]}.{NS}", case  # the first ready pod by name
        if count > 1:
            assert f"using pod {chosen} ({count} pods match {target}" in out.stderr, case
        else:
            assert "using pod" not in out.stderr, case

    concurrently(check, WORKLOAD_TARGETS)


def test_replicaset_and_selector_targets(mesh, extra):
    rs = names(extra, "replicasets", NS, "app=catalog,version=v2")
    assert len(rs) == 1
    v2 = names(extra, "pods", NS, "app=catalog,version=v2")
    out, ip = probe(mesh, f"rs/{rs[0]}", "-n", NS)
    assert pods_by_ip(extra)[ip] == f"{v2[0]}.{NS}"
    catalog = names(extra, "pods", NS, "app=catalog")
    out, ip = probe(mesh, "-l", "app=catalog", "-n", NS)
    assert pods_by_ip(extra)[ip] == f"{catalog[0]}.{NS}"
    assert f"({len(catalog)} pods match -l app=catalog;" in out.stderr
    gateway = names(extra, "pods", "istio-system", "app=istio-ingressgateway")
    _, ip = probe(mesh, "svc/istio-ingressgateway.istio-system")
    assert pods_by_ip(extra)[ip] == f"{gateway[0]}.istio-system"


# ---- error cases -----------------------------------------------------------------------------


TARGET_ERRORS = [  # (args, exit code, parts of the one-line message)
    (["catalo", "-n", NS], 3, ['pod or workload "catalo" not found in namespace istioinaction',
                               'did you mean "catalog"']),
    (["deploy/catalog-v3", "-n", NS], 3, ['deployment "catalog-v3" not found',
                                          'did you mean "catalog-v2"']),
    (["deploy/idle", "-n", NS], 3, ["deployment idle.istioinaction has no pods",
                                    "scaled to 0"]),
    (["broken", "-n", NS], 5, ["pod broken.istioinaction is Failed, not Running",
                               "kubectl describe pod broken -n istioinaction"]),
    (["deploy/istiod", "-n", "istio-system"], 3, [
        "has no istio-proxy container", "it is an Istio control-plane pod (istiod), not a "
                                        "proxy"]),
    (["deploy/catalog-v2", "-n", "default"], 3, [
        'deployment "catalog-v2" not found in namespace default: it is in namespace '
        "istioinaction", "add -n istioinaction"]),
    (["web", "-n", NS], 2, ['no pod "web", and several workloads have that name',
                            "statefulset/web or daemonset/web"]),
    (["catalog.nosuchns"], 3, ['there is no namespace "nosuchns"']),
]


def test_target_errors_are_one_line_with_their_exit_code(mesh, extra):
    """Not found (did you mean), no pods, not running, no sidecar, ambiguous, no namespace."""
    def check(case):
        args, code, parts = case
        out = mesh("listeners", *args)
        line = one_line_error(out)
        assert out.returncode == code, (args, line)
        for part in parts:
            assert part in line, (args, line)

    concurrently(check, TARGET_ERRORS)


def test_bad_output_and_unknown_flag_print_usage_and_exit_2(mesh):
    bad = mesh("listeners", "catalog", "-n", NS, "-o", "bogus")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("usage: kubectl mesh listeners ")
    assert "invalid choice: 'bogus' (choose from 'short', 'wide', 'json', 'yaml')" in bad.stderr
    unknown = mesh("clusters", "catalog", "-n", NS, "--bogus")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.startswith("usage: kubectl mesh clusters ")
    assert unknown.stderr.rstrip().endswith("unknown flag --bogus")
    assert "Traceback" not in bad.stderr + unknown.stderr


def test_a_mistyped_flag_gets_the_nearest_one_and_the_usage_line(mesh):
    out = mesh("routes", "deploy/istio-ingressgateway", "-n", "istio-system", "--trcae",
               "http://catalog.istioinaction.io/")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "usage: kubectl mesh routes [flags] [target] (see kubectl mesh routes --help)",
        "kubectl mesh routes: error: unknown flag --trcae; did you mean --trace?"]


def test_rbac_denied_port_forward_names_verb_and_resource(mesh, sandbox, tmp_path):
    viewer = str(sandbox.add_user("viewer", ["create pods/portforward"]))  # RBAC on either backend
    out = mesh("listeners", "deploy/catalog", "-n", NS, "--kubeconfig", viewer)
    line = one_line_error(out)
    assert out.returncode == 4
    assert "cannot create pods/portforward in namespace istioinaction" in line
    assert 'user "viewer"' in line
    unauthorized = mesh("listeners", "deploy/catalog", "-n", NS, "--kubeconfig",
                        write_kubeconfig(sandbox, tmp_path / "bad", token="no-such-token"))
    line = one_line_error(unauthorized)
    assert unauthorized.returncode == 4 and "rejected our credentials (401)" in line


def test_unreachable_api_server_fails_fast(mesh, sandbox, tmp_path):
    server = f"https://127.0.0.1:{closed_port()}"
    kubeconfig = write_kubeconfig(sandbox, tmp_path / "dead", server=server)
    started = time.monotonic()
    out = mesh("listeners", "deploy/catalog", "-n", NS, "--kubeconfig", kubeconfig,
               "--request-timeout", "60s")
    elapsed = time.monotonic() - started
    line = one_line_error(out)
    assert out.returncode == 5 and f"cannot reach the API server {server}" in line
    # A refused connection is final: no waiting out the 60 s timeout, no retry loop (the
    # bound is loose because a loaded 2-core machine takes seconds just to start Python).
    assert elapsed < 30


# ---- WebSocket refused: kubectl port-forward fallback ----------------------------------------


def test_websocket_refused_falls_back_to_kubectl_then_needs_kubectl(mesh, sandbox, tmp_path):
    refuse = sandbox.state / "refuse-websocket"
    refuse.touch()
    try:
        catalog = names(sandbox, "pods", NS, "app=catalog,version=v1")[0]
        out, ip = probe(mesh, "deploy/catalog", "-n", NS, "--debug")
        assert pods_by_ip(sandbox)[ip] == f"{catalog}.{NS}"
        assert "falling back to kubectl" in out.stderr
        # Without kubectl on PATH: only the plugin executables, kubectl run by full path.
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name in ("kubectl-mesh", "kubectl-mesh-listeners"):
            os.symlink(BIN / name, bin_dir / name)
        env = mesh.env()
        env["PATH"] = str(bin_dir)  # (mesh.env() puts the venv's bin, with kubectl, first)
        out = subprocess.run([kubectl_binary(), "mesh", "listeners", "deploy/catalog", "-n", NS],
                             capture_output=True, text=True, timeout=60, env=env)
        line = one_line_error(out)
        assert out.returncode == 8
        assert "refused the WebSocket port-forward" in line and "kubectl" in line
        assert "is not on PATH" in line
    finally:
        refuse.unlink()
    # No kubectl port-forward left behind.
    left = subprocess.run(["pgrep", "-f", f"port-forward .*-n {NS}"], capture_output=True,
                          text=True)
    assert left.stdout == ""


# ---- kubeconfig: --context, --kubeconfig, KUBECONFIG list -------------------------------------


def test_context_kubeconfig_and_kubeconfig_list(mesh, sandbox, tmp_path):
    """File 1: current context `other` (a closed port) and `team` (the sandbox's cluster and
    user, defined only in file 2, namespace istioinaction). File 2: the sandbox's kubeconfig."""
    dead = f"https://127.0.0.1:{closed_port()}"
    first = tmp_path / "first"
    first.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "dead", "cluster": {"server": dead}}],
        "users": [{"name": "nobody", "user": {"token": "x"}}],
        "contexts": [{"name": "other", "context": {"cluster": "dead", "user": "nobody"}},
                     {"name": "team", "context": {"cluster": "sandbox", "user": "sandbox-admin",
                                                  "namespace": NS}}]}))
    env = mesh.env(KUBECONFIG=os.pathsep.join([str(first), str(sandbox.kubeconfig)]))
    ips = pods_by_ip(sandbox)
    catalog = f"{names(sandbox, 'pods', NS, 'app=catalog,version=v1')[0]}.{NS}"

    out = mesh("listeners", "deploy/catalog", "-n", NS, env=env)
    assert out.returncode == 5 and "(context other)" in one_line_error(out)
    _, ip = probe(mesh, "deploy/catalog", "--context", "sandbox", "-n", NS, env=env)
    assert ips[ip] == catalog
    _, ip = probe(mesh, "deploy/catalog", "--context", "team", env=env)  # the context's ns
    assert ips[ip] == catalog
    gateway = names(sandbox, "pods", "istio-system", "app=istio-ingressgateway")[0]
    _, ip = probe(mesh, "deploy/istio-ingressgateway", "--context", "team", "-n",
                  "istio-system", env=env)  # -n beats the context's namespace
    assert ips[ip] == f"{gateway}.istio-system"
    _, ip = probe(mesh, "deploy/catalog", "--kubeconfig", str(sandbox.kubeconfig), "-n", NS,
                  env=mesh.env(KUBECONFIG=str(first)))
    assert ips[ip] == catalog
    missing = mesh("listeners", "catalog", "--context", "nope", env=env)
    assert missing.returncode == 3
    assert 'context "nope" not found' in one_line_error(missing)
    # The kubectl fallback reaches the same merged context.
    (sandbox.state / "refuse-websocket").touch()
    try:
        out, ip = probe(mesh, "deploy/catalog", "--context", "team", "--debug", env=env)
        assert ips[ip] == catalog and "falling back to kubectl" in out.stderr
    finally:
        (sandbox.state / "refuse-websocket").unlink()


# ---- pipes, --debug, Ctrl-C, colour ----------------------------------------------------------


def test_closed_pipe_is_not_an_error(mesh):
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([kubectl_binary(), "mesh", "clusters", "deploy/catalog", "-n", NS],
                            stdout=write_end, stderr=subprocess.PIPE, text=True, env=mesh.env())
    os.close(write_end)
    os.close(read_end)  # the reader is gone before the command writes a byte
    _, stderr = proc.communicate(timeout=60)
    assert (proc.returncode, stderr) == (0, "")
    shell = subprocess.run(["bash", "-c", "set -o pipefail; kubectl mesh clusters deploy/catalog "
                                          f"-n {NS} | head -1"],
                           capture_output=True, text=True, timeout=60, env=mesh.env())
    assert (shell.returncode, shell.stderr) == (0, "")
    assert shell.stdout.split()[:2] == ["SERVICE", "FQDN"]


def test_debug_shows_a_traceback_on_an_error(mesh):
    out = mesh("listeners", "nope", "-n", NS, "--debug")
    assert out.returncode == 3
    assert "Traceback (most recent call last)" in out.stderr
    assert out.stderr.rstrip().splitlines()[-1].startswith('error: pod or workload "nope"')
    plain = mesh("listeners", "nope", "-n", NS)
    assert "Traceback" not in plain.stderr


def test_ctrl_c_mid_request_exits_130_quietly(mesh, sandbox):
    pod = names(sandbox, "pods", NS, "app=catalog,version=v1")[0]
    envoy = envoy_pid(next(c["pid"] for p in sandbox.status() if p["name"] == pod
                           for c in p["containers"] if c["name"] == "istio-proxy"))
    os.kill(envoy, signal.SIGSTOP)
    try:
        # kubectl execs the plugin: the pid is the command's own process.
        proc = subprocess.Popen([kubectl_binary(), "mesh", "listeners", f"pod/{pod}", "-n", NS,
                                 "--request-timeout", "30s"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=mesh.env())
        # Interrupt mid-request: once the request has reached the stopped Envoy's admin port
        # (the kernel completes the handshake and queues the bytes; nobody answers).
        (obj,) = [p for p in sandbox.pods(NS) if p["metadata"]["name"] == pod]
        address = PodPort(obj, 15000).host  # 127.0.0.1 in a pod network namespace
        sandbox.wait_for(lambda: admin_request_queued(envoy, address) or proc.poll() is not None,
                         timeout=30, what="a request queued at the stopped Envoy's admin port")
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGINT)
        started = time.monotonic()
        stdout, stderr = proc.communicate(timeout=30)
        # Promptly, not after the 30 s request timeout (~0.3 s idle; generous for busy CI).
        assert time.monotonic() - started < 10
    finally:
        os.kill(envoy, signal.SIGCONT)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stdout == ""


def admin_request_queued(pid: int, ip: str, port: int = 15000) -> bool:
    """Whether a TCP connection to ip:port is ESTABLISHED with bytes waiting unread in the
    server side's receive queue, as process `pid`'s network namespace sees it
    (/proc/PID/net/tcp: local address, state 01, rx_queue)."""
    local = "%s:%04X" % ("".join("%02X" % int(b) for b in reversed(ip.split("."))), port)
    with open(f"/proc/{pid}/net/tcp") as f:
        return any(fields[1] == local and fields[3] == "01"
                   and int(fields[4].split(":")[1], 16) > 0
                   for fields in (line.split() for line in f.readlines()[1:]))


TRACE = ("routes", "deploy/istio-ingressgateway", "-n", "istio-system", "--trace",
         "http://catalog.istioinaction.io/items")


def run_on_a_tty(mesh, *args: str, env: dict) -> tuple[int, str]:
    """Run `kubectl mesh ARGS` with stdout on a pseudo-terminal; (exit code, what it printed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([kubectl_binary(), "mesh", *args], stdout=slave,
                            stderr=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_no_colour_unless_a_terminal_without_no_color(mesh):
    piped = mesh(*TRACE)
    assert piped.returncode == 7 and "BROKEN: Envoy answers 503 NC" in piped.stdout
    assert "\x1b[" not in piped.stdout + piped.stderr
    code, shown = run_on_a_tty(mesh, *TRACE, env=mesh.env())
    assert code == 7 and "\x1b[" in shown  # a terminal gets colour ...
    env = mesh.env()
    env["NO_COLOR"] = "1"  # (mesh.env() drops NO_COLOR, even as an argument)
    code, shown = run_on_a_tty(mesh, *TRACE, env=env)
    assert code == 7 and "BROKEN" in shown and "\x1b[" not in shown  # ... unless NO_COLOR


def test_istioctl_singular_names_work_through_kubectl(mesh):
    """kubectl finds no kubectl-mesh-route and hands `route ...` to the kubectl-mesh dispatcher."""
    plural = mesh("routes", "deploy/istio-ingressgateway", "-n", "istio-system")
    singular = mesh("route", "deploy/istio-ingressgateway", "-n", "istio-system")
    assert plural.returncode == singular.returncode == 0, singular.stderr
    assert singular.stdout == plural.stdout and "http.8080" in singular.stdout
    log = mesh("log", "deploy/istio-ingressgateway", "-n", "istio-system")
    assert log.returncode == 0 and log.stdout.startswith("LOGGER"), log.stderr
