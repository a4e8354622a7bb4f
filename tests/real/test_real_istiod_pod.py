"""istiod as a pod, installed as a user installs it: `istioctl manifest generate` applied
whole (`install(..., istiod="pod")`: istiod's Deployment, the webhooks by `service:`), the
sandbox kubelet on the netns pod network running the Deployment's pod with the real
pilot-discovery for the pilot image (`sandbox.real.istio.istiodpod`), in-cluster API access
through its service-account volume and the `kubernetes` Service, its webhooks called by the
real API server through istiod's ClusterIP, sidecars reaching `istiod.istio-system.svc:15012`
through cluster DNS. Then our commands and istioctl find istiod as on a real cluster: as a pod,
by port-forward, without --xds-address (docs/real-istio.md, "istiod as a pod")."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import subprocess

import pytest

from sandbox.testing import wait_until

from tests.real.test_real_istio_chapter10 import netns_of, process_users
from tests.real.test_real_istio_commands import (ISTIOD, by_name, istiod_pod_cluster, ok,
                                                 workload)

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]
NS = "istioinaction"


@pytest.fixture(scope="module")
def cluster(control_planes, binaries):
    cp = control_planes()
    with istiod_pod_cluster(cp, binaries) as c:
        c.injected_namespace(NS)
        c.apply([*workload("webapp", "docker.io/istioinaction/webapp:latest"),
                 *workload("catalog", "docker.io/istioinaction/catalog:latest")])
        wait_until(what="the pods of both Deployments", predicate=lambda: len(c.kubectl(
            "get", "pods", "-n", NS, "-o", "name").split()) == 2, timeout=60)
        c.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod", "--all", "--timeout=110s")
        yield c


def istiod_pod(cluster) -> dict:
    return json.loads(cluster.kubectl("get", "pods", *ISTIOD, "-o", "json"))["items"][0]


def proxy(cluster, app: str) -> str:
    return cluster.kubectl("get", "pods", "-n", NS, "-l", f"app={app}",
                           "-o", "jsonpath={.items[0].metadata.name}") + f".{NS}"


def test_istiod_runs_as_its_deployment_s_pod(cluster):
    pod = istiod_pod(cluster)
    assert pod["status"]["phase"] == "Running"
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    assert pod["status"]["podIP"].startswith("10.244.")
    assert pod["spec"]["containers"][0]["image"] == "registry.istio.io/testing/pilot:latest"
    # the real pilot-discovery in the pod's network namespace, as the image's user
    users = process_users(netns_of(cluster, "istio-system", pod["metadata"]["name"]))
    assert users.get("pilot-discovery") == "1337", users
    # it read the API server in-cluster: its CA's root is published to every namespace
    # (pilot/pkg/keycertbundle + the namespace controller), and it logged no kubeconfig
    root = json.loads(cluster.kubectl("get", "configmap", "-n", NS, "istio-ca-root-cert",
                                      "-o", "json"))
    assert "BEGIN CERTIFICATE" in root["data"]["root-cert.pem"]
    log = cluster.kubectl("logs", *ISTIOD, "--tail=-1")
    assert "Discover server subject alt names" in log and "istiod.istio-system.svc" in log


def test_the_webhooks_are_istiods_service_with_the_caBundle_it_patched(cluster):
    injector = json.loads(cluster.kubectl("get", "mutatingwebhookconfiguration",
                                          "istio-sidecar-injector", "-o", "json"))
    root = json.loads(cluster.kubectl("get", "configmap", "-n", "istio-system",
                                      "istio-ca-root-cert", "-o", "json"))["data"]["root-cert.pem"]
    for hook in injector["webhooks"]:
        config = hook["clientConfig"]
        assert "url" not in config and config["service"]["name"] == "istiod", config
        assert base64.b64decode(config["caBundle"]).decode().strip() == root.strip()
    # istiod turns its validator fail-closed once the API server's call to it refused its
    # test Gateway (pkg/webhooks/validation/controller/controller.go `readyForFailClose`)
    validator = wait_until(what="the validator fail-closed", predicate=lambda: (
        lambda v: v if v["webhooks"][0]["failurePolicy"] == "Fail" else None)(json.loads(
            cluster.kubectl("get", "validatingwebhookconfiguration",
                            "istio-validator-istio-system", "-o", "json"))), timeout=60)
    assert validator["webhooks"][0]["clientConfig"]["service"]["name"] == "istiod"
    # the validating webhook answers through the Service: an invalid resource of the
    # revision (its objectSelector: istio.io/rev In [default]) is refused by istiod's own
    # validation (pkg/config/validation `validateHTTPRouteDestinations`)
    bad = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": "bad", "namespace": NS, "labels": {"istio.io/rev": "default"}},
           "spec": {"hosts": ["x"], "http": [{"route": [{"destination": {"host": "x"},
                                                        "weight": -5}]}]}}
    out = cluster.run("kubectl", "apply", "-f", "-", input=json.dumps(bad))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert ('admission webhook "rev.validation.istio.io" denied the request: configuration is '
            "invalid: weight -5 < 0") in out.stderr, out.stderr


def test_pods_get_the_injected_spec_from_istiods_webhook(cluster):
    pods = json.loads(cluster.kubectl("get", "pods", "-n", NS, "-o", "json"))["items"]
    assert len(pods) == 2
    for pod in pods:
        # istio-proxy a native sidecar, an init container with restartPolicy Always
        # (pilot/pkg/features/pilot.go ENABLE_NATIVE_SIDECARS "auto": on for a Kubernetes
        # that supports them; injection-template.yaml `$nativeSidecar`)
        inits = {c["name"]: c for c in pod["spec"]["initContainers"]}
        assert list(inits) == ["istio-init", "istio-proxy"], list(inits)
        assert inits["istio-proxy"].get("restartPolicy") == "Always"
        assert "sidecar.istio.io/status" in pod["metadata"]["annotations"]
        assert inits["istio-proxy"]["args"][:2] == ["proxy", "sidecar"]


def test_sidecars_reach_istiod_through_its_service(cluster):
    """No forward to a host istiod on the gateway; the sidecar's pilot-agent resolved the
    Service name and holds a connection to istiod's pod (DNATed from the ClusterIP)."""
    network = cluster.cp.addresses.network
    rules = subprocess.run(["iptables", "-w", "-t", "nat", "-S", "PREROUTING"],
                           capture_output=True, text=True, check=True).stdout
    assert not [r for r in rules.splitlines() if f"kmesh{network} " in r + " "
                and "--dport 15012" in r], rules
    service_ip = cluster.kubectl("get", "service", "-n", "istio-system", "istiod",
                                 "-o", "jsonpath={.spec.clusterIP}")
    webapp = proxy(cluster, "webapp").split(".")[0]
    connections = subprocess.run(
        ["ip", "netns", "exec", netns_of(cluster, NS, webapp), "ss", "-tnH", "state",
         "established"], capture_output=True, text=True, check=True).stdout
    assert f"{service_ip}:15012" in connections, connections
    # as injected: CA_ADDR the injection template's (istiod.<istioNamespace>.svc:15012),
    # no discoveryAddress of the sandbox's making (the mesh default is the Service name:
    # pkg/config/mesh/mesh.go `DefaultProxyConfig`)
    pod = json.loads(cluster.kubectl("get", "pod", "-n", NS, webapp, "-o", "json"))
    injected = {e["name"]: e.get("value") for c in pod["spec"]["initContainers"]
                if c["name"] == "istio-proxy" for e in c["env"]}
    env = agent_environment(netns_of(cluster, NS, webapp))
    assert env["CA_ADDR"] == injected["CA_ADDR"] == "istiod.istio-system.svc:15012"
    assert "discoveryAddress" not in json.loads(env.get("PROXY_CONFIG") or "{}"), env


def agent_environment(netns: str) -> dict[str, str]:
    """The environment of the pilot-agent process in the network namespace `netns`."""
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True,
                          check=True).stdout.split()
    for pid in pids:
        proc = pathlib.Path(f"/proc/{pid}")
        try:
            if (proc / "comm").read_text().strip() == "pilot-agent":
                return dict(item.split("=", 1) for item in
                            (proc / "environ").read_bytes().decode().split("\0") if "=" in item)
        except OSError:
            continue
    raise AssertionError(f"no pilot-agent in {netns}")


def test_sync_and_istioctl_find_istiod_as_a_pod(cluster):
    webapp, catalog = proxy(cluster, "webapp"), proxy(cluster, "catalog")
    istiod = istiod_pod(cluster)["metadata"]["name"]

    def synced():
        out = cluster.mesh("sync")
        rows = by_name(out.stdout) if out.returncode in (0, 7) and out.stdout.strip() else {}
        return rows if {r.get("RDS") for r in rows.values()} == {"SYNCED"} and len(rows) == 2 \
            else None
    ours = wait_until(what="both proxies SYNCED in kubectl mesh sync", predicate=synced,
                      timeout=90)
    assert set(ours) == {webapp, catalog}
    assert ours[webapp]["ISTIOD"] == istiod and ours[webapp]["CDS"] == "SYNCED", ours
    theirs = by_name(ok(cluster.istioctl("proxy-status", "-v", "1")))
    assert set(theirs) == {webapp, catalog}
    assert theirs[webapp]["ISTIOD"] == istiod and theirs[webapp]["LDS"] == "SYNCED", theirs


def test_routes_of_a_sidecar(cluster):
    out = ok(cluster.mesh("routes", proxy(cluster, "webapp")))
    assert f"catalog.{NS}.svc.cluster.local" in out, out
