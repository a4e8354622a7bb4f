"""`kubectl mesh describe` through real kubectl against the sandbox's default scenario (Istio in
Action ch. 10): the catalog pod's Service, the gateway's VirtualService splitting 20/80 to
subsets no DestinationRule defines (503 NC at the gateway), then catalog-destinationrule.yaml
applied as the analyze e2e test applies it: the subset each pod is in, PERMISSIVE mTLS; a
DestinationRule Envoy rejects is one the proxies do not carry; bad input and RBAC."""

from __future__ import annotations

import json
import pathlib
import time

import pytest

from sandbox.testing import add_user

pytestmark = pytest.mark.timeout(240)
# Why tests run on the sandbox istiod only (skipped with `--backend istio`)
LOST_PUSH = ("the lost push is the sandbox istiod's fault switch (pod annotation "
             "sandbox.kubectl-mesh.io/xds-fault: lose-pushes); real istiod has none")
NACK_FAULT = ("the NACK is made by the annotation sandbox.kubectl-mesh.io/invalid, which only "
              "the sandbox istiod turns into an invalid cluster")

SCENARIOS = pathlib.Path(__file__).resolve().parents[2] / "sandbox" / "scenarios"
FIX = SCENARIOS / "catalog-destinationrule.yaml"
HOST = "catalog.istioinaction.svc.cluster.local"
ROUTE_V1 = f'   Route to host "{HOST}" subset "version-v1" with weight 20%'
ROUTE_V2 = f'   Route to host "{HOST}" subset "version-v2" with weight 80%'


def describe_until(mesh, *args: str, done, timeout: float = 30.0):
    """Run describe until `done(result)` (istiod pushes and Envoys apply asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        result = mesh("describe", *args)
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def pod_names(sandbox, selector: str) -> list[str]:
    out = sandbox.kubectl("get", "pods", "-n", "istioinaction", "-l", selector, "-o",
                          "jsonpath={.items[*].metadata.name}")
    return sorted(out.stdout.split())


def section(text: str, header: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(header)
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")),
               len(lines))
    return lines[start:end]


def test_the_catalog_pod_before_the_destination_rule(sandbox, mesh):
    v1 = pod_names(sandbox, "app=catalog,version=v1")[0]
    result = mesh("describe", "pod", v1, "-n", "istioinaction")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    # istio-proxy is a native sidecar (an init container): istioctl's printPod lists the
    # ports of spec.containers only, so its 15090 is not among them
    assert text.splitlines()[:3] == [f"Pod: {v1}", "   Pod Revision: default",
                                     "   Pod Ports: 3000 (catalog)"]
    assert "Service: catalog\n   Port: http 80/HTTP targets pod port 3000\n" in text
    assert "DestinationRule:" not in text
    assert "Effective PeerAuthentication:\n   Workload mTLS mode: PERMISSIVE\n" in text
    assert f"Exposed on Ingress Gateway http://{gateway_address(sandbox)}\n" in text
    gateway = pod_names_in(sandbox, "istio-system", "istio=ingressgateway")[0]
    assert section(text, "VirtualService: catalog-v1-v2") == [
        "VirtualService: catalog-v1-v2",
        ROUTE_V1,
        "      Warning: Route to subset version-v1 but NO DESTINATION RULE defining subsets!",
        ROUTE_V2,
        "      Warning: Route to subset version-v2 but NO DESTINATION RULE defining subsets!",
        "   WARNING: No destinations match pod subsets (checked 1 HTTP routes)",
        f'   Error [IST0101] Referenced host+subset in destinationrule not found: "{HOST}'
        '+version-v1"',
        f'   Error [IST0101] Referenced host+subset in destinationrule not found: "{HOST}'
        '+version-v2"',
        # the live gateway: its routes send to subset clusters it does not have
        f"   WARNING: proxy {gateway}.istio-system routes to cluster outbound|80|version-v1|"
        f"{HOST}, which it does not have (503 NC)",
        f"   WARNING: proxy {gateway}.istio-system routes to cluster outbound|80|version-v2|"
        f"{HOST}, which it does not have (503 NC)"]


def gateway_address(sandbox) -> str:
    """Where the ingress gateway is exposed: its load balancer's IP (the double's controllers
    give it one), else its pod's host IP (the real backend runs no load-balancer controller)."""
    svc = json.loads(sandbox.kubectl("get", "svc", "istio-ingressgateway", "-n", "istio-system",
                                     "-o", "json").stdout)
    ingress = (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    if ingress:
        return ingress[0]["ip"]
    return sandbox.pods("istio-system", "istio=ingressgateway")[0]["status"]["hostIP"]


def pod_names_in(sandbox, namespace: str, selector: str) -> list[str]:
    out = sandbox.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o",
                          "jsonpath={.items[*].metadata.name}")
    return sorted(out.stdout.split())


def test_after_the_destination_rule_each_pod_is_in_its_subset(sandbox, mesh):
    v1 = pod_names(sandbox, "app=catalog,version=v1")[0]
    sandbox.kubectl("apply", "-f", str(FIX))
    try:
        settled = describe_until(mesh, "pod", v1, "-n", "istioinaction",
                                 done=lambda r: "WARNING: proxy" not in r.stdout)
        assert settled.returncode == 0, settled.stderr
        text = settled.stdout
        assert section(text, f'DestinationRule: catalog for "{HOST}"') == [
            f'DestinationRule: catalog for "{HOST}"',
            "   Matching subsets: version-v1",
            "      (Non-matching subsets version-v2)",
            "   No Traffic Policy"]
        assert section(text, "VirtualService: catalog-v1-v2") == [
            "VirtualService: catalog-v1-v2", ROUTE_V1, ROUTE_V2,
            "      Route to non-matching subset version-v2 for (everything)"]
        assert "   Workload mTLS mode: PERMISSIVE\n" in text
        assert "IST0101" not in text
        # a workload target: one of catalog-v2's pods, in subset version-v2
        result = mesh("describe", "pod", "deploy/catalog-v2", "-n", "istioinaction")
        assert result.returncode == 0, result.stderr
        assert "   Matching subsets: version-v2\n      (Non-matching subsets version-v1)\n" \
            in result.stdout
        assert "using pod catalog-v2-" in result.stderr  # two pods: which one is said
        # the Service: both subsets have pods
        result = mesh("describe", "svc", "catalog", "-n", "istioinaction")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Service: catalog\n")
        assert "   Matching subsets: version-v1,version-v2\n" in result.stdout
        assert "Pod:" not in result.stdout
    finally:
        sandbox.kubectl("delete", "-f", str(FIX))


@pytest.mark.sandbox_istiod_only(NACK_FAULT)
def test_a_destination_rule_envoy_rejects_is_not_carried(sandbox, mesh):
    v1 = pod_names(sandbox, "app=catalog,version=v1")[0]
    invalid = FIX.read_text().replace(
        "metadata:\n", "metadata:\n  annotations: {sandbox.kubectl-mesh.io/invalid: \"true\"}\n", 1)
    sandbox.kubectl("apply", "-f", "-", input=invalid)
    try:
        want = (f"   WARNING: proxy {v1}.istioinaction does not carry DestinationRule catalog: "
                f"its cluster outbound|80||{HOST} has none (not pushed yet, or rejected: kubectl "
                f"mesh sync {v1}.istioinaction)")
        result = describe_until(mesh, "pod", v1, "-n", "istioinaction",
                                done=lambda r: want in r.stdout.splitlines())
        assert want in section(result.stdout, f'DestinationRule: catalog for "{HOST}"')
        gateway = pod_names_in(sandbox, "istio-system", "istio=ingressgateway")[0]
        assert (f"   WARNING: proxy {gateway}.istio-system does not carry DestinationRule "
                "catalog: its cluster") in result.stdout
        assert result.returncode == 0
        # without asking the proxies nothing is claimed about them
        result = mesh("describe", "pod", v1, "-n", "istioinaction", "--no-proxy-check")
        assert "WARNING: proxy" not in result.stdout and result.returncode == 0
    finally:
        sandbox.kubectl("delete", "-f", "-", input=invalid)


def test_json_output(sandbox, mesh):
    result = mesh("describe", "pod", "deploy/catalog", "-n", "istioinaction", "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == "pod" and data["pod"]["meshed"] is True
    assert data["pod"]["proxy"]["checked"] is True
    (svc,) = data["services"]
    assert svc["host"] == HOST and svc["ports"][0]["targetPort"] == 3000
    assert data["peerAuthentication"]["mode"] == "PERMISSIVE"
    assert data["peerAuthentication"]["mtlsRequired"] is False
    (exposure,) = data["ingress"]["exposures"]
    assert exposure["gateway"] == "istioinaction/catalog-gateway"
    assert exposure["urls"] == [f"http://{gateway_address(sandbox)}"]
    assert exposure["hosts"] == ["catalog.istioinaction.io"]
    weights = [(d["subset"], d["weight"]) for d in
               exposure["virtualService"]["routes"][0]["destinations"]]
    assert weights == [("version-v1", 20), ("version-v2", 80)]
    assert [f["code"] for f in exposure["virtualService"]["findings"]] == ["IST0101", "IST0101"]


def test_not_found_is_the_targets_hint(mesh):
    result = mesh("describe", "pod", "catalog-nope", "-n", "istioinaction")
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.strip() == ('error: pod or workload "catalog-nope" not found in '
                                     'namespace istioinaction (did you mean "catalog" or '
                                     '"catalog-v2"?)')
    result = mesh("describe", "svc", "catalg", "-n", "istioinaction")
    assert result.returncode == 3
    assert 'service "catalg" not found in namespace istioinaction' in result.stderr
    result = mesh("describe", "deployment", "catalog")
    assert result.returncode == 2
    assert "unknown resource type 'deployment' (pod or service)" in result.stderr


SELECTS_NOTHING = """\
apiVersion: v1
kind: Service
metadata: {name: orphan, namespace: istioinaction}
spec:
  selector: {app: nothing}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""


def test_a_service_selecting_nothing(sandbox, mesh):
    sandbox.kubectl("apply", "-f", "-", input=SELECTS_NOTHING)
    try:
        result = mesh("describe", "svc", "orphan", "-n", "istioinaction")
        assert result.returncode == 0, result.stderr
        assert result.stdout == 'Service "orphan" has no pods.\n'
        result = mesh("describe", "pod", "svc/orphan", "-n", "istioinaction")
        assert result.returncode == 3
        assert result.stderr.strip() == ("error: service orphan.istioinaction has no pods "
                                         "(selector app=nothing; are its workloads scaled to 0?)")
    finally:
        sandbox.kubectl("delete", "-f", "-", input=SELECTS_NOTHING)


LATE = """\
apiVersion: v1
kind: Namespace
metadata: {name: late}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: late, labels: {app: web}}
spec:
  containers:
  - {name: web, image: nginx, ports: [{containerPort: 8080}]}
"""


def test_a_pod_without_sidecar(sandbox, mesh):
    sandbox.kubectl("apply", "-f", "-", input=LATE)
    try:
        # Ready, not only Running: describe warns about a container not ready yet (on a pod
        # network namespace the first readiness probe comes after the phase)
        sandbox.kubectl("wait", "-n", "late", "--for=condition=Ready", "pod/web",
                        "--timeout=60s")
        result = mesh("describe", "pod", "web", "-n", "late")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[3:6] == [
            "WARNING: web is not part of mesh; no Istio sidecar",
            "   namespace late is not labelled for injection: kubectl label namespace late "
            "istio-injection=enabled, then restart the pod",
            "Warning: No Kubernetes Services select pod web (see "
            "https://istio.io/docs/setup/kubernetes/additional-setup/requirements/ )"]
        assert "cannot read the config" not in result.stderr  # no proxy: none asked
        result = mesh("describe", "pod", "web", "-n", "late", "--ignoreUnmeshed")
        assert "not part of mesh" not in result.stdout and "No Kubernetes Services" \
            not in result.stdout
    finally:
        sandbox.kubectl("-n", "late", "delete", "pod", "web", "--ignore-not-found", "--wait=false")
        sandbox.kubectl("delete", "namespace", "late", "--wait=false")


def test_rbac(sandbox, mesh):
    v1 = pod_names(sandbox, "app=catalog,version=v1")[0]
    no_services = add_user(sandbox.state, sandbox.kubeconfig, "no-services", ["list services"])
    result = mesh("describe", "pod", v1, "-n", "istioinaction",
                  env=mesh.env(KUBECONFIG=str(no_services)))
    assert result.returncode == 4
    assert result.stdout == ""
    assert result.stderr.strip().startswith("error: cannot list services in every namespace")
    no_forward = add_user(sandbox.state, sandbox.kubeconfig, "no-forward",
                          ["create pods/portforward", "get pods/portforward"])
    result = mesh("describe", "pod", v1, "-n", "istioinaction",
                  env=mesh.env(KUBECONFIG=str(no_forward)))
    assert result.returncode == 0, result.stderr
    assert f"warning: cannot read the config of proxy {v1}.istioinaction" in result.stderr
    assert "Service: catalog" in result.stdout and "WARNING: proxy" not in result.stdout


def test_completion_through_kubectl(sandbox, mesh):
    import subprocess

    from sandbox.testing import kubectl_binary

    def complete(*words: str) -> list[str]:
        out = subprocess.run([kubectl_binary(), "__complete", "mesh", *words],
                             capture_output=True, text=True, timeout=30, env=mesh.env())
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    assert complete("describe", "") == ["pod", "service", ":4"]
    assert complete("describe", "svc", "-n", "istioinaction", "cat") == ["catalog", ":4"]
    pods = complete("describe", "pod", "-n", "istioinaction", "catalog-v2")
    assert pods == pod_names(sandbox, "app=catalog,version=v2") + [":4"]


MESH_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog-mesh, namespace: istioinaction}
spec:
  hosts: [catalog]
  http:
  - route: [{destination: {host: catalog}}]
    timeout: 2s
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: 5xx}
"""
FAULT = "sandbox.kubectl-mesh.io/xds-fault"


@pytest.mark.sandbox_istiod_only(LOST_PUSH)
def test_a_mesh_virtual_service_and_a_proxy_that_never_got_it(sandbox, mesh):
    v1 = pod_names(sandbox, "app=catalog,version=v1")[0]
    sandbox.kubectl("apply", "-f", str(SCENARIOS / "catalog-timeout.yaml"))
    # istiod records pushes to this pod as sent and ACKed, but they never reach its Envoy
    sandbox.kubectl("annotate", "pod", "-n", "istioinaction", v1, f"{FAULT}=lose-pushes")
    sandbox.kubectl("apply", "-f", "-", input=MESH_VS)
    try:
        # another pod of the service gets it: the push has happened
        v2 = pod_names(sandbox, "app=catalog,version=v2")[0]
        pushed = describe_until(mesh, "pod", v2, "-n", "istioinaction",
                                done=lambda r: "VirtualService: catalog-mesh" in r.stdout
                                and "does not carry VirtualService" not in r.stdout)
        assert section(pushed.stdout, "VirtualService: catalog-mesh") == [
            "VirtualService: catalog-mesh", '   Route to host "catalog"', "   Timeout 2s",
            "   Retries 2 attempts, 1s per try, on 5xx",
            "   1 HTTP route(s)"]  # istioctl's line when it printed no fact (test_real_istio_commands)
        result = mesh("describe", "pod", v1, "-n", "istioinaction")
        assert result.returncode == 0, result.stderr
        assert section(result.stdout, "VirtualService: catalog-mesh")[-1] == (
            f"   WARNING: proxy {v1}.istioinaction does not carry VirtualService catalog-mesh "
            f"(not pushed yet, or rejected: kubectl mesh sync {v1}.istioinaction)")
        # the gateway's VirtualService, with the timeout catalog-timeout.yaml adds
        assert "   Timeout 0.5s" in section(result.stdout, "VirtualService: catalog-v1-v2")
    finally:
        sandbox.kubectl("delete", "-f", "-", input=MESH_VS)
        sandbox.kubectl("annotate", "pod", "-n", "istioinaction", v1, f"{FAULT}-")
        # the default scenario's VirtualService is catalog-timeout.yaml's without the timeout
        original = (SCENARIOS / "catalog-timeout.yaml").read_text().replace("    timeout: 0.5s\n", "")
        sandbox.kubectl("apply", "-f", "-", input=original)
