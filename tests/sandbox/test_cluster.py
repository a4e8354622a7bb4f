"""The sandbox as real kubectl sees it: discovery, tables, selectors, apply/patch/scale/delete,
logs, auth, and the default scenario's pods with real Envoys."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request

import pytest
import yaml

from sandbox.testing import SCENARIOS, RunningSandbox, pid_alive


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    with RunningSandbox(tmp_path_factory.mktemp("sb") / "state") as s:
        yield s


def _api(sb: RunningSandbox, path: str, token: str | None = "default"):
    cfg = yaml.safe_load(sb.kubeconfig.read_text())
    server = cfg["clusters"][0]["cluster"]["server"]
    ctx = ssl.create_default_context(cafile=str(sb.state / "pki" / "ca.crt"))
    req = urllib.request.Request(server + path)
    if token == "default":
        token = cfg["users"][0]["user"]["token"]
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_default_scenario_pods_are_running_and_ready(sb):
    out = sb.kubectl("get", "pods", "-A").stdout
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["NAMESPACE", "NAME", "READY", "STATUS"]
    rows = [line.split() for line in lines[1:]]
    by_prefix = {}
    for ns, name, ready, status, *_ in rows:
        assert status == "Running", out
        by_prefix.setdefault((ns, name.rsplit("-", 2)[0]), []).append(ready)
    assert by_prefix[("istioinaction", "catalog")] == ["2/2"]
    assert by_prefix[("istioinaction", "catalog-v2")] == ["2/2", "2/2"]
    assert by_prefix[("istio-system", "istio-ingressgateway")] == ["1/1"]
    assert by_prefix[("istio-system", "istiod")] == ["1/1"]


def test_each_pod_has_its_own_loopback_ip_and_a_real_envoy(sb):
    pods = sb.pods("istioinaction") + sb.pods("istio-system", "app=istio-ingressgateway")
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == len(ips) and all(ip.startswith("127.") and not ip.startswith("127.0.") for ip in ips)
    for p in pods:
        info = json.loads(urllib.request.urlopen(f"http://{p['status']['podIP']}:15000/server_info",
                                                 timeout=5).read())
        kind = "router" if p["metadata"]["namespace"] == "istio-system" else "sidecar"
        ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
        assert info["node"]["id"] == f"{kind}~{p['status']['podIP']}~{name}.{ns}~{ns}.svc.cluster.local"
        assert "/1.40." in info["version"]
        assert info["state"] == "LIVE"


def test_deployment_table_and_selectors(sb):
    out = sb.kubectl("get", "deploy", "-n", "istioinaction").stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert {tuple(line.split()[:2]) for line in out[1:]} == {("catalog", "1/1"), ("catalog-v2", "2/2")}
    v2 = sb.pods("istioinaction", "app=catalog,version=v2")
    assert len(v2) == 2
    ip = v2[1]["status"]["podIP"]
    got = sb.kubectl("get", "pods", "-A", "--field-selector", f"status.podIP={ip}", "-o",
                     "jsonpath={.items[*].metadata.name}").stdout
    assert got == v2[1]["metadata"]["name"]
    assert sb.kubectl("get", "pods", "-n", "istioinaction", "-l", "version in (v1)", "-o",
                      "name").stdout.count("pod/") == 1
    assert sb.kubectl("get", "pods", "-n", "istioinaction", "-l", "version notin (v1),app",
                      "-o", "name").stdout.count("pod/") == 2


@pytest.mark.parametrize("args,message", [
    (("pods", "--field-selector", "spec.foo=x"), "field label not supported: spec.foo"),
    (("pods", "--field-selector", "metadata.labels.app=catalog"),
     "field label not supported: metadata.labels.app"),
    (("deploy", "--field-selector", "spec.replicas=1"),
     '"spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'),
    (("pods", "--watch", "--field-selector", "spec.foo=x"), "field label not supported: spec.foo"),
], ids=["pod-field", "labels-as-field", "deployment-field", "watch"])
def test_unsupported_field_selectors_are_refused_as_the_real_server_does(sb, args, message):
    """Only the field labels a kind registers can select (pkg/apis/core/v1/conversion.go);
    tests/real/test_kubelet.py asks the real API server the same."""
    out = sb.kubectl("get", *args, "-n", "istioinaction", check=False, timeout=20)
    assert out.returncode != 0
    assert message in out.stderr


def test_service_endpoints_follow_pods(sb):
    ep = json.loads(sb.kubectl("get", "endpoints", "catalog", "-n", "istioinaction", "-o", "json").stdout)
    ips = sorted(a["ip"] for a in ep["subsets"][0]["addresses"])
    assert ips == sorted(p["status"]["podIP"] for p in sb.pods("istioinaction", "app=catalog"))
    assert ep["subsets"][0]["ports"][0]["port"] == 3000


def test_unauthenticated_and_forbidden_get_real_status_bodies(sb):
    code, body = _api(sb, "/api/v1/pods", token=None)
    assert (code, body["kind"], body["reason"], body["code"]) == (401, "Status", "Unauthorized", 401)
    rbac = json.loads((sb.state / "rbac.json").read_text())
    rbac["tokens"]["limited-token"] = {"user": "limited", "deny": ["list pods", "create pods/portforward"]}
    (sb.state / "rbac.json").write_text(json.dumps(rbac))
    code, body = _api(sb, "/api/v1/namespaces/istioinaction/pods", token="limited-token")
    assert code == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('pods is forbidden: User "limited" cannot list resource "pods" in '
                               'API group "" in the namespace "istioinaction"')
    code, _ = _api(sb, "/api/v1/namespaces/istioinaction/services", token="limited-token")
    assert code == 200
    out = sb.kubectl("--token", "limited-token", "get", "pods", "-n", "istioinaction", check=False)
    assert out.returncode == 1
    assert 'User "limited" cannot list resource "pods"' in out.stderr


def test_a_namespace_denial_also_denies_the_cluster_scope(sb):
    """Denied `list pods` in istio-system, a user cannot list pods across namespaces either:
    a cluster-scope list needs a ClusterRoleBinding, which would cover istio-system too."""
    config = str(sb.add_user("ns-limited", ["list pods@istio-system"]))
    everywhere = sb.kubectl("--kubeconfig", config, "get", "pods", "-A", check=False)
    assert everywhere.returncode == 1 and "istiod" not in everywhere.stdout
    assert ('User "ns-limited" cannot list resource "pods" in API group "" at the cluster '
            'scope') in everywhere.stderr
    watching = sb.kubectl("--kubeconfig", config, "get", "pods", "-A", "--watch-only",
                          "--request-timeout", "2s", check=False)
    assert watching.returncode == 1 and "at the cluster scope" in watching.stderr
    denied = sb.kubectl("--kubeconfig", config, "get", "pods", "-n", "istio-system", check=False)
    assert 'in the namespace "istio-system"' in denied.stderr
    allowed = sb.kubectl("--kubeconfig", config, "get", "pods", "-n", "istioinaction").stdout
    assert "catalog-v2" in allowed
    services = sb.kubectl("--kubeconfig", config, "get", "services", "-A").stdout
    assert "istiod" in services  # only pods are denied


def test_credential_files_and_their_directories_are_private(sb):
    """The token table, kubeconfigs and the server key: 0600; the state and pki dirs: 0700."""
    import stat

    def mode(path):
        return oct(stat.S_IMODE(path.stat().st_mode))

    viewer = sb.add_user("private-viewer", ["get nodes"])
    with sb.denied("get nodes"):
        assert mode(sb.state / "rbac.json") == "0o600"
    files = [sb.state / "rbac.json", sb.kubeconfig, viewer, sb.state / "pki" / "server.key"]
    assert [mode(f) for f in files] == ["0o600"] * 4
    assert [mode(d) for d in (sb.state, sb.state / "pki")] == ["0o700"] * 2


def test_apply_scale_patch_and_delete_a_workload(sb, tmp_path):
    manifest = tmp_path / "httpbin.yaml"
    manifest.write_text("""
apiVersion: v1
kind: Namespace
metadata: {name: web, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin, namespace: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: httpbin}}
  template:
    metadata: {labels: {app: httpbin, version: v1}}
    spec:
      containers:
      - {name: httpbin, image: docker.io/kennethreitz/httpbin, ports: [{containerPort: 8000}]}
---
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: web}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 8000}]
""")
    out = sb.kubectl("apply", "-f", str(manifest)).stdout
    assert "deployment.apps/httpbin created" in out
    assert "unchanged" in sb.kubectl("apply", "-f", str(manifest)).stdout
    sb.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=httpbin", "-n", "web", "--timeout=30s")
    pod = sb.pods("web", "app=httpbin")[0]
    # istiod's default (ENABLE_NATIVE_SIDECARS=auto, every kubelet >= 1.33): a native sidecar
    assert [c["name"] for c in pod["spec"]["containers"]] == ["httpbin"]
    assert [(c["name"], c.get("restartPolicy")) for c in pod["spec"]["initContainers"]] == \
        [("istio-init", None), ("istio-proxy", "Always")]
    assert sb.kubectl("get", "pod", pod["metadata"]["name"], "-n", "web",
                      "--no-headers").stdout.split()[1] == "2/2"
    reply = json.loads(urllib.request.urlopen(f"http://{pod['status']['podIP']}:8000/get", timeout=5).read())
    assert reply["pod"] == pod["metadata"]["name"]

    sb.kubectl("scale", "deploy/httpbin", "-n", "web", "--replicas=3")
    sb.wait_for(lambda: len([p for p in sb.pods("web") if p["status"].get("phase") == "Running"]) == 3,
                what="3 running httpbin pods")
    manifest.write_text(manifest.read_text().replace("version: v1", "version: v2"))
    sb.kubectl("apply", "-f", str(manifest))
    sb.wait_for(lambda: {p["metadata"]["labels"].get("version") for p in sb.pods("web")} == {"v2"},
                what="rollout to v2")
    sb.kubectl("patch", "deploy", "httpbin", "-n", "web", "--type", "json", "-p",
               '[{"op":"replace","path":"/spec/replicas","value":1}]')
    sb.wait_for(lambda: len(sb.pods("web")) == 1, what="scale down to 1")

    def web_pids():  # every container of the remaining web pod started (status is async)
        pods = [p for p in sb.status() if p["namespace"] == "web"]
        pids = [c["pid"] for p in pods for c in p["containers"] if c["name"] != "istio-init"]
        return pids if len(pods) == 1 and len(pids) == 2 and all(pids) else None

    pids_before = {"web": sb.wait_for(web_pids, what="the web pod's container pids")}
    sb.kubectl("delete", "namespace", "web")
    sb.wait_for(lambda: not sb.kubectl("get", "pods", "-n", "web", "-o", "name").stdout.strip(),
                what="web pods gone")
    dead = lambda: not any(pid_alive(pid) for pids in pids_before.values() for pid in pids)  # noqa: E731
    sb.wait_for(dead, timeout=10, what="web pod processes to exit")


def test_patch_virtualservice_with_json_patch(sb):
    sb.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type", "json", "-p",
               '[{"op":"add","path":"/spec/http/0/timeout","value":"3s"}]')
    vs = json.loads(sb.kubectl("get", "vs", "catalog-v1-v2", "-n", "istioinaction", "-o", "json").stdout)
    assert vs["spec"]["http"][0]["timeout"] == "3s"
    assert vs["metadata"]["generation"] == 2
    sb.kubectl("patch", "virtualservice", "catalog-v1-v2", "-n", "istioinaction", "--type", "json",
               "-p", '[{"op":"remove","path":"/spec/http/0/timeout"}]')
    bad = sb.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type", "json", "-p",
                     '[{"op":"remove","path":"/spec/nope"}]', check=False)
    assert bad.returncode != 0 and "nope" in bad.stderr


def _gateway(sb, path="/items"):
    ip = sb.pod_ip("istio-system", "app=istio-ingressgateway")
    req = urllib.request.Request(f"http://{ip}:8080{path}", headers={"Host": "catalog.istioinaction.io"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_gateway_503_nc_until_destinationrule_then_200(sb):
    assert _gateway(sb) == 503
    log = sb.wait_for(lambda: [line for line in sb.kubectl(
        "logs", "-n", "istio-system", "deploy/istio-ingressgateway", "--tail", "5").stdout.splitlines()
        if '"GET /items HTTP/1.1" 503 NC' in line], what="NC access log line")
    assert "catalog.istioinaction.io" in log[-1]
    sb.kubectl("apply", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"))
    try:
        sb.wait_for(lambda: _gateway(sb) == 200, timeout=15, what="200 through the gateway")
    finally:
        sb.kubectl("delete", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"))
    sb.wait_for(lambda: _gateway(sb) == 503, timeout=15, what="503 again after deleting the DR")


def test_logs_tail_since_and_container_choice(sb):
    pod = sb.pods("istioinaction", "app=catalog,version=v1")[0]["metadata"]["name"]
    missing = sb.kubectl("logs", pod, "-n", "istioinaction", "-c", "nope", check=False)
    assert missing.returncode != 0 and "container nope is not valid for pod" in missing.stderr
    app = sb.kubectl("logs", pod, "-n", "istioinaction", "-c", "catalog").stdout
    assert "listening on" in app
    one = sb.kubectl("logs", pod, "-n", "istioinaction", "-c", "catalog", "--tail", "1").stdout
    assert one.count("\n") == 1
    stamped = sb.kubectl("logs", pod, "-n", "istioinaction", "-c", "catalog", "--timestamps",
                         "--tail", "1").stdout
    assert stamped.split(" ", 1)[0].endswith("Z") and stamped.split(" ", 1)[1] == one
    # the container's last line ages past a 1 s window
    sb.wait_for(lambda: sb.kubectl("logs", pod, "-n", "istioinaction", "-c", "catalog",
                                   "--since", "1s").stdout == "",
                timeout=15, interval=0.5, what="--since 1s to match no line")


@pytest.mark.parametrize("query,code,message", [
    ("tailLines=abc", 400, 'tailLines: strconv.ParseInt: parsing "abc": invalid syntax'),
    ("tailLines=-5", 422, 'PodLogOptions "{pod}" is invalid: tailLines: Invalid value: -5: must '
                          "be greater than or equal to 0"),
    ("sinceSeconds=0", 422, 'PodLogOptions "{pod}" is invalid: sinceSeconds: Invalid value: 0: '
                            "must be greater than 0"),
], ids=["tail-not-a-number", "tail-negative", "since-zero"])
def test_log_options_are_refused_before_the_stream_starts(sb, query, code, message):
    pod = sb.pods("istioinaction", "app=catalog,version=v1")[0]["metadata"]["name"]
    status, body = _api(sb, f"/api/v1/namespaces/istioinaction/pods/{pod}/log?container=catalog"
                        f"&{query}")
    assert (status, body["code"], body["message"]) == (code, code, message.format(pod=pod))


def test_kubectl_exec_and_port_forward_into_sandbox_pods(sb):
    """The runtime's side of exec/port-forward (pod context, container choice), through real
    kubectl; the protocol matrix itself is in test_streams.py."""
    import socket
    import subprocess
    from sandbox.testing import kubectl_binary

    pod = sb.pods("istioinaction", "version=v1")[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    out = sb.kubectl("exec", name, "-n", "istioinaction", "-c", "catalog", "--",
                     "sh", "-c", 'echo "$POD_NAME $POD_IP"; echo oops >&2; exit 3', check=False)
    assert (out.returncode, out.stdout, out.stderr.splitlines()[0]) == (3, f"{name} {ip}\n", "oops")
    echoed = sb.kubectl("exec", "-i", name, "-n", "istioinaction", "-c", "catalog", "--", "cat",
                        input="through stdin\n")
    assert echoed.stdout == "through stdin\n"
    missing = sb.kubectl("exec", name, "-n", "istioinaction", "-c", "catalog", "--",
                         "no-such-binary", check=False)
    assert missing.returncode != 0 and "executable file not found" in missing.stderr

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
    forward = subprocess.Popen([kubectl_binary(), "port-forward", "-n", "istioinaction", name,
                                f"{local}:15000"], env=sb.env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert "Forwarding from 127.0.0.1" in forward.stdout.readline()
        info = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{local}/server_info",
                                                 timeout=10).read())
        assert info["node"]["id"].startswith(f"sidecar~{ip}~{name}.istioinaction")
    finally:
        forward.terminate()
        forward.wait(10)


def test_exec_outlives_its_client_and_ends_with_its_container(sb):
    """As on a real node: `kubectl exec` going away leaves the process running (inside the
    container's cgroup, like the container's own process); stopping the container ends it."""
    import pathlib
    import subprocess
    from sandbox.testing import kubectl_binary

    sb.kubectl("run", "exec-target", "-n", "istioinaction", "--image", "busybox",
               "--restart", "Never", "--", "sleep", "300")
    sb.wait_for(lambda: (sb.pods("istioinaction", "run=exec-target") or [{}])[0]
                .get("status", {}).get("phase") == "Running", timeout=30, what="exec-target")
    pod = sb.pods("istioinaction", "run=exec-target")[0]
    cid = next(s["containerID"] for s in pod["status"]["containerStatuses"]
               if s["name"] == "exec-target")
    kubectl = subprocess.Popen([kubectl_binary(), "exec", "exec-target", "-n", "istioinaction",
                                "-c", "exec-target", "--", "sh", "-c", "echo $$; exec sleep 301"],
                               stdout=subprocess.PIPE, env=sb.env())
    pid = int(kubectl.stdout.readline())
    kubectl.kill()
    kubectl.communicate()
    try:
        # Nothing announces that the API server has dropped the vanished client's stream:
        # give it a second in which killing the process would show.
        time.sleep(1.0)
        assert pid_alive(pid), "the exec'd process died with its client"
        if cid.startswith("containerd://"):  # the sandbox has cgroups (root): it is in it
            assert cid.split("://")[1] in pathlib.Path(f"/proc/{pid}/cgroup").read_text()
    finally:
        sb.kubectl("delete", "pod", "exec-target", "-n", "istioinaction", "--grace-period=0",
                   "--wait=true", check=False)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(pid), "the exec'd process outlived its container"


def test_a_pods_tcpdump_filter_cannot_reach_another_pods_traffic(sb):
    """Through kubectl exec: an unbalanced filter is tcpdump's syntax error (it does not close
    the shim's `host POD_IP and (...)`); a valid one compiles to the pod-scoped program."""
    import subprocess

    sb.kubectl("run", "capture-target", "--image", "nicolaka/netshoot", "--restart", "Never",
               "--", "sleep", "300")
    try:
        pod = sb.wait_for(lambda: next((p for p in sb.pods("default", "run=capture-target")
                                        if p["status"].get("phase") == "Running"), None),
                          what="capture-target running")
        ip, other = pod["status"]["podIP"], sb.pod_ip("istio-system", "app=istiod")
        escape = sb.kubectl("exec", "capture-target", "--", "tcpdump", "-d",
                            f"0=1) or (host {other}", check=False)
        assert escape.returncode == 1 and escape.stdout == ""
        assert "tcpdump: can't parse filter expression: syntax error" in escape.stderr
        scoped = sb.kubectl("exec", "capture-target", "--", "tcpdump", "-d", f"host {other}")
        expected = subprocess.run(["/usr/bin/tcpdump", "-i", "lo", "-d",
                                   f"host {ip} and (host {other})"],
                                  capture_output=True, text=True, check=True).stdout
        assert scoped.stdout == expected
    finally:
        sb.kubectl("delete", "pod", "capture-target", "--grace-period=0", "--wait=false",
                   check=False)


def test_the_node_is_a_kubelets(sb):
    """The double's Node carries what a kubelet registers (sandbox/nodestatus.py), as the
    real API server's Node from the sandbox's kubelet does (tests/real/test_kubelet.py)."""
    node = json.loads(sb.kubectl("get", "node", "sandbox-node", "-o", "json").stdout)
    status = node["status"]
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert status["nodeInfo"]["kubeletVersion"] == "v1.37.2"
    assert {"cpu", "memory", "pods"} <= set(status["capacity"])
    assert status["allocatable"] == status["capacity"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert list(conditions) == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert conditions["Ready"]["status"] == "True" and conditions["Ready"]["reason"] == "KubeletReady"
    assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    wide = sb.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP",
                               "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert wide[1].split()[:3] == ["sandbox-node", "Ready", "<none>"]
    assert "v1.37.2" in wide[1] and "127.0.0.1" in wide[1]


def _injected(sb: RunningSandbox, name: str, annotations: dict) -> tuple[list, list]:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "istioinaction", "annotations": annotations},
           "spec": {"containers": [{"name": "app", "image": "istioinaction/catalog:latest"}]}}
    created = json.loads(sb.kubectl("create", "-o", "json", "-f", "-",
                                    input=json.dumps(pod)).stdout)
    sb.kubectl("delete", "pod", name, "-n", "istioinaction", "--wait=false")
    spec = created["spec"]
    return ([c["name"] for c in spec["containers"]],
            [(c["name"], c.get("restartPolicy")) for c in spec.get("initContainers") or []])


def test_native_sidecar_injection_follows_istiods_rule(sb):
    """pkg/kube/inject: the pod's sidecar.istio.io/nativeSidecar annotation wins over
    ENABLE_NATIVE_SIDECARS (here `<state>/native-sidecars`), whose `auto` is on with every
    kubelet >= 1.33 (the sandbox node reports 1.37)."""
    native = (["app"], [("istio-init", None), ("istio-proxy", "Always")])
    classic = (["app", "istio-proxy"], [("istio-init", None)])
    assert _injected(sb, "auto", {}) == native
    assert _injected(sb, "opt-out", {"sidecar.istio.io/nativeSidecar": "false"}) == classic
    mode = sb.state / "native-sidecars"
    try:
        mode.write_text("false")
        assert _injected(sb, "off", {}) == classic
        assert _injected(sb, "opt-in", {"sidecar.istio.io/nativeSidecar": "true"}) == native
        mode.write_text("bogus")  # istiod: an unknown value is false
        assert _injected(sb, "bogus", {}) == classic
    finally:
        mode.unlink()
