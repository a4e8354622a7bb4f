"""How `kubectl mesh sync` reaches istiod, end to end through REAL kubectl against the
sandbox: XDS (the debug type on 15012, TLS + TokenRequest token) first, HTTP 15014 as the
fallback, one line naming each failure when neither answers; --xds-address; revision tags;
an istiod in another namespace. Each test restores what it changes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest


pytestmark = pytest.mark.timeout(180)
# Why tests run on the sandbox istiod only (skipped with `--backend istio`)
BARE_ISTIOD = ("a second istiod from a bare Deployment is the sandbox istiod's model; a real "
               "one needs its chart (ServiceAccount, RBAC, mesh config, webhooks)")
REVISION_TAG = ("the revision tag prod is the scenario's istiod stand-in's (REVISION_TAGS, its "
                "webhook); real Istio's minimal install has none until `istioctl tag set`")
DEBUG_SWITCH = ("ENABLE_DEBUG_ON_HTTP flipped at run time (istiod_debug_http) is a state file "
                "only the sandbox istiod reads; real istiod reads the variable once at start "
                "(pilot/pkg/features/pilot.go EnableDebugOnHTTP)")
FALLBACK_NOTE = "note: istiod's XDS debug interface did not answer"
NO_TOKEN = "create serviceaccounts/token"


def _rows(stdout: str) -> dict[str, str]:
    return {line.split()[0]: line for line in stdout.splitlines()[1:] if line.strip()}


def _meshed(sandbox) -> list[str]:
    return sorted(f"{p['name']}.{p['namespace']}" for p in sandbox.status()
                  if any(c["name"] == "istio-proxy" for c in p["containers"]))


def _istiod_ip(sandbox) -> str:
    return sandbox.pod_ip("istio-system", "app=istiod")


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.sandbox_istiod_only(DEBUG_SWITCH)
def test_sync_reads_xds_while_istiods_http_debug_is_off(mesh, sandbox):
    with sandbox.istiod_debug_http(False):
        assert _http_status(f"http://{_istiod_ip(sandbox)}:15014/debug/syncz") == 404
        out = mesh("sync")
    assert out.returncode == 0, out.stderr
    rows = _rows(out.stdout)
    assert sorted(rows) == _meshed(sandbox)
    assert all(line.count("SYNCED (") == 4 for line in rows.values())
    assert FALLBACK_NOTE not in out.stderr and out.stderr == ""


@pytest.mark.sandbox_istiod_only(DEBUG_SWITCH)
def test_verify_prefers_http_and_says_what_xds_cannot_check(mesh, sandbox):
    out = mesh("sync", "--verify")
    assert out.returncode == 0, out.stderr
    assert "note:" not in out.stderr  # HTTP answered: its nonces let LAGGING be checked
    with sandbox.istiod_debug_http(False):
        out = mesh("sync", "--verify", "-o", "wide")
    assert out.returncode == 0, out.stderr
    assert sorted(_rows(out.stdout.split("\n\n")[0])) == _meshed(sandbox)
    notes = [line for line in out.stderr.splitlines() if line.startswith("note:")]
    assert notes == ["note: istiod's HTTP debug interface did not answer (HTTP 15014: answered "
                     "404 to /debug/syncz: 404 page not found (ENABLE_DEBUG_ON_HTTP=false?)); "
                     "reading syncz over XDS 15012, which has no nonces: --verify cannot check "
                     "LAGGING"], out.stderr


def test_without_xds_sync_falls_back_to_http_and_says_so_once(mesh, sandbox):
    with sandbox.denied(NO_TOKEN):
        out = mesh("sync", "--wait", "--timeout", "20s")
    assert out.returncode == 0, out.stderr
    assert sorted(_rows(out.stdout)) == _meshed(sandbox)
    notes = [line for line in out.stderr.splitlines() if line.startswith(FALLBACK_NOTE)]
    assert len(notes) == 1, out.stderr
    note = notes[0]
    assert "XDS 15012: no token for serviceaccount istio-system/default" in note
    assert "create" in note and "serviceaccounts/token" in note
    # 15010 is tried too; istiod refuses debug types there (ENABLE_DEBUG_ENDPOINT_AUTH)
    assert "XDS 15010: gRPC Unauthenticated: authentication required" in note
    assert note.endswith("reading /debug/syncz over HTTP 15014")


@pytest.mark.sandbox_istiod_only(DEBUG_SWITCH)
def test_when_neither_answers_one_line_names_each_failure(mesh, sandbox):
    with sandbox.denied(NO_TOKEN), sandbox.istiod_debug_http(False):
        out = mesh("sync")
    assert out.returncode == 5, out.stderr  # UNREACHABLE (README: exit codes)
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    line = lines[0]
    assert line.startswith("error: cannot read the sync state of istiod istiod-")
    assert "XDS 15012: no token for serviceaccount istio-system/default" in line
    assert "XDS 15010: gRPC Unauthenticated" in line
    assert "HTTP 15014: answered 404 to /debug/syncz" in line
    assert "ENABLE_DEBUG_ON_HTTP=false?" in line and "Traceback" not in out.stderr


@pytest.mark.sandbox_istiod_only(DEBUG_SWITCH)
def test_xds_address_reaches_istiod_without_the_pods(mesh, sandbox):
    address = f"{_istiod_ip(sandbox)}:15012"
    with sandbox.istiod_debug_http(False):
        out = mesh("sync", "--xds-address", address, "--authority", "istiod.istio-system.svc")
        assert out.returncode == 0, out.stderr
        assert sorted(_rows(out.stdout)) == _meshed(sandbox)
        istiod = sandbox.pods("istio-system", "app=istiod")[0]["metadata"]["name"]
        # the ISTIOD column comes from the answer's control-plane identifier
        assert all(line.split()[-2] == istiod for line in _rows(out.stdout).values())
        # by default the certificate must carry the address's host
        out = mesh("sync", "--xds-address", address)
        assert out.returncode == 5
        assert f"--xds-address {address}: TLS: IP address mismatch" in out.stderr
        # the plaintext port refuses debug types unless ENABLE_DEBUG_ENDPOINT_AUTH=false
        out = mesh("sync", "--xds-address", f"{_istiod_ip(sandbox)}:15010", "--plaintext")
        assert out.returncode == 5 and "Unauthenticated: authentication required" in out.stderr
    out = mesh("sync", "--xds-address", "nohost")
    assert out.returncode == 2 and "is not HOST:PORT" in out.stderr


@pytest.mark.sandbox_istiod_only(REVISION_TAG)
def test_revision_accepts_a_revision_tag(mesh, sandbox):
    hooks = sandbox.kubectl("get", "mutatingwebhookconfigurations", "-l", "istio.io/tag=prod",
                            "-o", "json")
    items = json.loads(hooks.stdout)["items"]
    assert [h["metadata"]["name"] for h in items] == ["istio-revision-tag-prod"]
    assert items[0]["metadata"]["labels"]["istio.io/rev"] == "default"
    out = mesh("sync", "--revision", "prod")
    assert out.returncode == 0, out.stderr
    assert "revision tag prod → revision default" in out.stderr
    assert sorted(_rows(out.stdout)) == _meshed(sandbox)
    out = mesh("sync", "--revision", "canary")
    assert out.returncode == 3 and "istio.io/rev=canary" in out.stderr


AKS_NAMESPACE = "aks-istio-system"
AKS_ISTIOD = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {AKS_NAMESPACE}}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istiod-asm-1-28
  namespace: {AKS_NAMESPACE}
  labels: {{app: istiod, istio.io/rev: asm-1-28}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: istiod, istio.io/rev: asm-1-28}}
  template:
    metadata:
      labels: {{app: istiod, istio.io/rev: asm-1-28}}
    spec:
      containers:
      - name: discovery
        image: mcr.microsoft.com/oss/istio/pilot:1.28.0
        env:
        - {{name: REVISION, value: asm-1-28}}
"""


@pytest.mark.sandbox_istiod_only(BARE_ISTIOD)
def test_an_istiod_in_another_namespace_is_reached_over_xds(mesh, sandbox):
    """The AKS add-on's layout: istiod-asm-1-28 in aks-istio-system. The token, the root
    certificate and the certificate's name (istiod-asm-1-28.aks-istio-system.svc) are that
    namespace's and revision's; no proxy is connected to it."""
    namespace, deployment = AKS_ISTIOD.split("\n---\n")
    sandbox.kubectl("apply", "-f", "-", input=namespace)
    # one mesh, one root: the second control plane gets the first one's CA (as a plugged-in
    # CA would); two roots would overwrite each other's istio-ca-root-cert in every namespace
    secret = json.loads(sandbox.kubectl("get", "secret", "istio-ca-secret", "-n", "istio-system",
                                        "-o", "json").stdout)
    sandbox.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": secret.get("type"), "data": secret["data"],
        "metadata": {"name": "istio-ca-secret", "namespace": AKS_NAMESPACE}}))
    sandbox.kubectl("apply", "-f", "-", input=deployment)
    try:
        sandbox.wait_for(lambda: sandbox.kubectl(
            "get", "configmap", "istio-ca-root-cert", "-n", AKS_NAMESPACE,
            check=False).returncode == 0, timeout=60, what="the root cert in that namespace")
        # every istiod publishes that ConfigMap to every namespace: the second one is up once
        # its pod is Ready (in a network namespace of its own it starts later)
        sandbox.wait_for(lambda: sandbox.kubectl(
            "get", "pods", "-n", AKS_NAMESPACE, "-l", "istio.io/rev=asm-1-28", "-o",
            "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}",
            check=False).stdout == "True", timeout=90, what="the second istiod Ready")
        with sandbox.istiod_debug_http(False):
            out = mesh("sync", "--istio-namespace", AKS_NAMESPACE, "--revision", "asm-1-28")
        assert out.returncode == 0, out.stderr
        assert _rows(out.stdout) == {}
        assert "no proxies in any namespace are connected to istiod (istiod-asm-1-28-" \
            in out.stderr
        assert FALLBACK_NOTE not in out.stderr
    finally:
        sandbox.kubectl("delete", "deployment", "istiod-asm-1-28", "-n", AKS_NAMESPACE,
                        check=False)
        sandbox.kubectl("delete", "mutatingwebhookconfigurations",
                        "istio-sidecar-injector-asm-1-28-aks-istio-system", check=False)
        sandbox.kubectl("delete", "namespace", AKS_NAMESPACE, check=False)


@pytest.mark.sandbox_istiod_only(DEBUG_SWITCH)
def test_without_istiod_pods_the_webhooks_injection_url_names_the_control_plane(mesh, sandbox):
    """A control plane outside the cluster (e.g. a remote or managed istiod): no istiod pod
    in the istio namespace, only an injector webhook with a URL. Like istioctl, sync asks the
    xDS server at that URL's host and port."""
    ip = _istiod_ip(sandbox)
    hook = {"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "istio-sidecar-injector-external",
                         "labels": {"istio.io/rev": "external", "app": "sidecar-injector"}},
            "webhooks": [{"name": "rev.namespace.sidecar-injector.istio.io",
                          "clientConfig": {"url": f"https://{ip}:15012/inject/cluster/c1"},
                          "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(hook))
    try:
        with sandbox.istiod_debug_http(False):
            out = mesh("sync", "--revision", "external", "--authority",
                       "istiod.istio-system.svc")
        assert out.returncode == 0, out.stderr
        assert sorted(_rows(out.stdout)) == _meshed(sandbox)
        assert (f"no istiod pod in namespace istio-system: asking the control plane at "
                f"{ip}:15012, the injection URL of MutatingWebhookConfiguration "
                "istio-sidecar-injector-external") in out.stderr
    finally:
        sandbox.kubectl("delete", "mutatingwebhookconfigurations",
                        "istio-sidecar-injector-external", check=False)
    out = mesh("sync", "--revision", "external")
    assert out.returncode == 3 and "istio.io/rev=external" in out.stderr
