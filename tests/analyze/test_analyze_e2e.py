"""`kubectl mesh analyze` through real kubectl against the sandbox's default scenario: the
VirtualService routes to subsets no DestinationRule defines until catalog-destinationrule.yaml
is applied; a file is analyzed as if applied over the cluster; kinds the cluster does not
serve or RBAC refuses are one warning line each.

The real backends call their injector and validator by an IP `url:` (sandbox/real/injection.py,
sandbox/real/istio/manifests.py), which istioctl reports (IST0164, Info, about the cluster-scoped
webhook configuration, so in every namespace): `findings` leaves those lines out where a test is
about the scenario's objects, and `test_the_clusters_own_webhook_configurations` checks them."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from sandbox.testing import add_user

SCENARIOS = pathlib.Path(__file__).resolve().parents[2] / "sandbox" / "scenarios"
FIX = SCENARIOS / "catalog-destinationrule.yaml"
V1 = ('Error [IST0101] (VirtualService istioinaction/catalog-v1-v2) Referenced host+subset in '
      'destinationrule not found: "catalog.istioinaction.svc.cluster.local+version-v1"')
V2 = V1.replace("version-v1", "version-v2")
# the cluster's own webhook configurations' IST0164 lines, off in tests of the scenario's objects
QUIET_WEBHOOKS = ("--suppress", "IST0164=*WebhookConfiguration *")


def findings(result) -> list[str]:
    """The output lines about namespaced objects (not about webhook configurations)."""
    return [line for line in result.stdout.splitlines() if "WebhookConfiguration " not in line]


def test_the_default_scenario_has_two_missing_subsets(mesh, sandbox):
    result = mesh("analyze", "-n", "istioinaction")
    assert findings(result) == [V1, V2], result.stderr
    assert result.returncode == 7
    # every kind analyze reads is served: the API double serves Istio's CRD kinds as the real
    # API server does once their CRDs are installed (docs/real-istio.md finding 24)
    assert "does not serve" not in result.stderr, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    # a mesh config ConfigMap istiod does not have is one line (the API double's scenario has
    # none; Istio's defaults are used)
    no_mesh_config = sandbox.kubectl("get", "configmap", "istio", "-n", "istio-system",
                                     check=False).returncode != 0
    assert len(warnings) == no_mesh_config, result.stderr
    assert any("no mesh config ConfigMap istio-system/istio" in w for w in warnings) \
        == no_mesh_config, result.stderr


ISTIO_OBJECTS = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-db, namespace: istioinaction}
spec:
  hosts: [db.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 5432, name: tcp-db, protocol: TCP}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istioinaction}
spec:
  egress: [{hosts: ["./*", "istio-system/*"]}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: istioinaction}
spec: {address: vm-1.example.com, labels: {app: vm}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istioinaction}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nobody, namespace: istioinaction}
spec: {selector: {matchLabels: {app: nothing-has-this}}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istioinaction}
spec: {jwtRules: [{issuer: "https://issuer.example.com"}]}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: istioinaction}
spec: {accessLogging: [{providers: [{name: envoy}]}]}
"""
SHORT_NAMES = ("se", "sidecars", "we", "pa", "ap", "ra", "telemetry")


def test_istio_kinds_are_served_as_for_installed_crds(sandbox, mesh):
    """kubectl applies (client- and server-side), gets, watches and deletes Istio's kinds,
    and analyze reads them from the cluster: the ServiceEntry's TCP port without addresses
    (IST0133, IST0134) and the policy selecting no pod (IST0127)."""
    import subprocess

    from sandbox.testing import kubectl_binary

    sandbox.kubectl("apply", "-f", "-", input=ISTIO_OBJECTS)
    try:
        listed = sandbox.kubectl("get", ",".join(SHORT_NAMES), "-n", "istioinaction",
                                 "-o", "name").stdout.split()
        assert sorted(listed) == sorted([
            "serviceentry.networking.istio.io/ext-db", "sidecar.networking.istio.io/default",
            "workloadentry.networking.istio.io/vm-1",
            "peerauthentication.security.istio.io/default",
            "authorizationpolicy.security.istio.io/nobody",
            "requestauthentication.security.istio.io/jwt", "telemetry.telemetry.istio.io/logs"])
        # a second apply changes the spec (a merge patch: no strategic merge for CRDs)
        permissive = ISTIO_OBJECTS.replace("STRICT", "PERMISSIVE")
        sandbox.kubectl("apply", "-f", "-", input=permissive)
        sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                        input=permissive.replace("resolution: DNS", "resolution: NONE"))
        assert sandbox.kubectl("get", "pa", "default", "-n", "istioinaction", "-o",
                               "jsonpath={.spec.mtls.mode}").stdout == "PERMISSIVE"
        assert sandbox.kubectl("get", "se", "ext-db", "-n", "istioinaction", "-o",
                               "jsonpath={.spec.resolution}").stdout == "NONE"
        result = mesh("analyze", "-n", "istioinaction")
        lines = findings(result)
        assert lines[:2] == [V1, V2], (result.stdout, result.stderr)
        assert sorted(line.split(")")[0] for line in lines[2:]) == [
            "Warning [IST0127] (AuthorizationPolicy istioinaction/nobody",
            "Warning [IST0133] (ServiceEntry istioinaction/ext-db",
            "Warning [IST0134] (ServiceEntry istioinaction/ext-db"], result.stdout
        # a watch sees the delete
        watch = subprocess.Popen([kubectl_binary(), "wait", "--for=delete", "se/ext-db", "-n",
                                  "istioinaction", "--timeout=60s"], env=sandbox.env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            sandbox.wait_for(lambda: sandbox.kubectl("get", "se", "ext-db", "-n",
                                                     "istioinaction", check=False).returncode == 0,
                             what="the ServiceEntry")
            sandbox.kubectl("delete", "se", "ext-db", "-n", "istioinaction")
            out, err = watch.communicate(timeout=60)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
        assert watch.returncode == 0, err
        assert "IST0134" not in mesh("analyze", "-n", "istioinaction").stdout
    finally:
        sandbox.kubectl("delete", "-f", "-", "--ignore-not-found", input=ISTIO_OBJECTS)


EXTERNAL_WEBHOOKS = """\
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: istio-sidecar-injector-analyze-test}
webhooks:
- name: rev.namespace.sidecar-injector.istio.io
  clientConfig: {url: "https://127.0.0.1:9/inject"}
  namespaceSelector: {matchLabels: {kubectl-mesh-analyze-test: never}}
  objectSelector: {matchLabels: {kubectl-mesh-analyze-test: never}}
  rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}]
  sideEffects: None
  admissionReviewVersions: [v1]
- name: rev.object.sidecar-injector.istio.io
  clientConfig: {url: "https://istiod.analyze-test.example:9/inject"}
  namespaceSelector: {matchLabels: {kubectl-mesh-analyze-test: never}}
  objectSelector: {matchLabels: {kubectl-mesh-analyze-test: never}}
  rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}]
  sideEffects: None
  admissionReviewVersions: [v1]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: istio-validator-analyze-test}
webhooks:
- name: rev.validation.istio.io
  clientConfig: {url: "https://[::1]:9/validate"}
  namespaceSelector: {matchLabels: {kubectl-mesh-analyze-test: never}}
  objectSelector: {matchLabels: {kubectl-mesh-analyze-test: never}}
  rules: [{operations: [CREATE], apiGroups: [networking.istio.io], apiVersions: ["*"],
           resources: [virtualservices]}]
  sideEffects: None
  admissionReviewVersions: [v1]
"""


def test_webhooks_calling_istiod_by_ip_are_reported_in_every_namespace(sandbox, mesh):
    """IST0164 (Info) per webhook of Istio's webhook configurations whose `url:` host is an
    IP (pkg/config/analysis/analyzers/externalcontrolplane); the configurations are
    cluster-scoped, so `-n istioinaction` reports them too. Their selectors match nothing: the
    API server never calls them."""
    sandbox.kubectl("apply", "-f", "-", input=EXTERNAL_WEBHOOKS)
    try:
        result = mesh("analyze", "-n", "istioinaction", "--output-threshold", "Info")
        assert result.returncode == 7, result.stderr
        ours = [line for line in result.stdout.splitlines() if "analyze-test" in line]
        assert ours == [
            "Info [IST0164] (MutatingWebhookConfiguration istio-sidecar-injector-analyze-test) "
            "The address (https://127.0.0.1:9/inject) that was provided for the webhook "
            "(rev.namespace.sidecar-injector.istio.io) to reach the ingress gateway on the "
            "external control plane cluster is an IP address. This is not recommended for a "
            "production environment.",
            "Info [IST0164] (ValidatingWebhookConfiguration istio-validator-analyze-test) The "
            "address (https://[::1]:9/validate) that was provided for the webhook "
            "(rev.validation.istio.io) to reach the ingress gateway on the external control "
            "plane cluster is an IP address. This is not recommended for a production "
            "environment."], result.stdout
        quiet = mesh("analyze", "-n", "istioinaction", *QUIET_WEBHOOKS)
        assert quiet.stdout.splitlines() == [V1, V2], quiet.stdout
    finally:
        sandbox.kubectl("delete", "-f", "-", "--ignore-not-found", input=EXTERNAL_WEBHOOKS)


def test_the_clusters_own_webhook_configurations(sandbox, mesh):
    """The double's istiod installs its injector by Service: nothing to report. The real
    backends' webhooks call an IP `url:`: one IST0164 line per such webhook, as istioctl prints
    (tests/real/test_real_istio.py compares the two on real Istio)."""
    configs = []
    for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        configs += json.loads(sandbox.kubectl("get", kind, "-o", "json").stdout)["items"]
    by_url = sorted(
        (c["kind"], c["metadata"]["name"], h["name"]) for c in configs
        for h in c.get("webhooks") or [] if "url" in h.get("clientConfig", {})
        and c["metadata"]["name"].startswith(("istio-sidecar-injector", "istio-validator",
                                              "istiod-default-validator")))
    result = mesh("analyze", "-n", "istioinaction")
    reported = sorted(re.match(r"Info \[IST0164\] \((\w+) (\S+)\) The address \(https://"
                               r"[\d.]+:\d+/\S*\) that was provided for the webhook \((\S+)\)",
                               line).groups()
                      for line in result.stdout.splitlines() if "WebhookConfiguration " in line)
    assert reported == by_url, result.stdout
    # by Service on the double and real Istio's pod install; by an IP url on the real backend
    assert bool(by_url) == (sandbox.backend == "real" and sandbox.istio == "sandbox"), by_url


def test_the_same_lines_as_istioctl_on_the_real_api_server(sandbox, mesh):
    """Real `istioctl analyze` beside ours on the same cluster: the same lines, the webhook
    configurations' IST0164 included (docs/real-istio.md finding 9)."""
    import subprocess

    if sandbox.backend == "double":
        pytest.skip("istioctl needs the API server's apiextensions API (its CRD informers), "
                    "which the API double does not serve")
    from sandbox.real.controlplane import locate_binaries

    for scope in (["-n", "istioinaction"], ["-n", "istio-system"]):
        theirs = subprocess.run([str(locate_binaries() / "istioctl"), "--kubeconfig",
                                 str(sandbox.kubeconfig), "analyze", "--color=false", *scope],
                                capture_output=True, text=True, timeout=120)
        ours = mesh("analyze", *scope)
        # istioctl ends a clean run's stdout with an empty line
        assert ours.stdout.splitlines() == [line for line in theirs.stdout.splitlines() if line], \
            (scope, theirs.stderr)
        assert (ours.returncode == 7) == (theirs.returncode == 79), (scope, theirs.stderr)
        # the real backend's sandbox injector is called by an IP url (real Istio's here by its
        # Service: sandbox/real/istio/mesh.py)
        assert any("[IST0164]" in line for line in ours.stdout.splitlines()) \
            == (sandbox.istio == "sandbox"), ours.stdout


def test_json_output_has_istioctl_keys(mesh):
    result = mesh("analyze", "-n", "istioinaction", "-o", "json", *QUIET_WEBHOOKS)
    assert result.returncode == 7, result.stderr
    data = json.loads(result.stdout)
    assert [m["message"] for m in data] == [V1.split(") ", 1)[1], V2.split(") ", 1)[1]]
    assert data[0] == {
        "code": "IST0101",
        "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/"
                            "?ref=istioctl-analyze",
        "level": "Error", "message": data[0]["message"],
        "origin": "VirtualService istioinaction/catalog-v1-v2"}


def test_a_file_counts_as_applied_before_it_is(sandbox, mesh):
    result = mesh("analyze", str(FIX), "-n", "istioinaction", *QUIET_WEBHOOKS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert f"No validation issues found when analyzing {FIX}." in result.stderr


def test_after_applying_the_fix_the_namespace_is_clean(sandbox, mesh):
    sandbox.kubectl("apply", "-f", str(FIX))
    try:
        result = mesh("analyze", "-n", "istioinaction", *QUIET_WEBHOOKS)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout == ""
        assert "No validation issues found when analyzing namespace: istioinaction." in result.stderr
        # the subsets select the catalog pods: removing a pod label's match is reported
        broken = FIX.read_text().replace("{version: v2}", "{version: v3}")
        result = mesh("analyze", "-", "-n", "istioinaction", input=broken)
        assert result.returncode == 7, result.stderr
        assert findings(result) == [
            "Error [IST0173] (DestinationRule istioinaction/catalog -:1) The Subset version-v2 "
            "defined in the DestinationRule does not select any pods. Which may lead to 503 UH "
            "(NoHealthyUpstream)."]
    finally:
        sandbox.kubectl("delete", "-f", str(FIX))


def test_pods_without_a_proxy_in_an_injected_namespace(sandbox, mesh):
    # the ingress gateway runs in istio-system, which injection analysis leaves out
    result = mesh("analyze", "-n", "istio-system", "--output-threshold", "Info")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "IST0103" not in result.stdout
    result = mesh("analyze", "-n", "default", "--output-threshold", "Info")
    assert result.returncode == 0, result.stderr
    assert ("Info [IST0102] (Namespace default) The namespace is not enabled for Istio "
            "injection. Run 'kubectl label namespace default istio-injection=enabled'") \
        in result.stdout
    result = mesh("analyze", "-n", "default", "--suppress", "IST0102=Namespace default")
    assert findings(result) == [] and result.returncode == 0, result.stderr


def test_rbac_refusal_is_one_warning_and_analysis_goes_on(sandbox, mesh):
    kubeconfig = add_user(sandbox.state, sandbox.kubeconfig, "no-secrets", ["list secrets"])
    result = mesh("analyze", "-n", "istioinaction", env=mesh.env(KUBECONFIG=str(kubeconfig)))
    assert result.returncode == 7, result.stderr
    assert findings(result) == [V1, V2]
    refused = [line for line in result.stderr.splitlines() if "secrets" in line]
    assert refused == ["warning: cannot list secrets at the cluster scope: ask for RBAC verb list "
                       "on secrets; the analyzers that need Secret objects are skipped"], \
        result.stderr


def test_webhook_configurations_refused_are_one_warning_each_and_analysis_goes_on(sandbox, mesh):
    kubeconfig = sandbox.add_user("no-webhooks", ["list mutatingwebhookconfigurations",
                                                  "list validatingwebhookconfigurations"])
    result = mesh("analyze", "-n", "istioinaction", env=mesh.env(KUBECONFIG=str(kubeconfig)))
    assert result.returncode == 7, result.stderr
    assert result.stdout.splitlines() == [V1, V2]  # no webhook lines: not read
    refused = [line for line in result.stderr.splitlines() if "webhookconfigurations" in line]
    assert refused == [
        f"warning: cannot list {kind.lower()}s.admissionregistration.k8s.io at the cluster "
        f"scope: ask for RBAC verb list on {kind.lower()}s.admissionregistration.k8s.io; the "
        f"analyzers that need {kind} objects are skipped"
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")], \
        result.stderr


def test_a_kind_refused_cluster_wide_skips_its_analyzers(sandbox, mesh):
    # pods visible in istioinaction only: the gateway's pods in istio-system would look
    # missing, so the pod analyzers do not run rather than report a selector matching nothing
    kubeconfig = add_user(sandbox.state, sandbox.kubeconfig, "ns-pods", ["list pods@istio-system"])
    result = mesh("analyze", "-n", "istioinaction", env=mesh.env(KUBECONFIG=str(kubeconfig)))
    assert result.returncode == 7, result.stderr
    assert findings(result) == [V1, V2]
    assert "warning: cannot list pods at the cluster scope" in result.stderr


def test_a_namespace_that_does_not_exist(mesh):
    result = mesh("analyze", "-n", "no-such-ns")
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: namespace 'no-such-ns' not found in the cluster nor in the files")
    # a new application's files, checked before its namespace is created
    new_app = FIX.read_text().replace("istioinaction", "new-app")
    result = mesh("analyze", "-", "-n", "new-app", input=new_app)
    assert result.returncode == 0, result.stderr
    assert "IST0174" in result.stdout  # its DestinationRule's host is not (yet) a service


def test_completion_offers_analyze_flags_and_leaves_files_to_the_shell(sandbox, mesh):
    import subprocess

    from sandbox.testing import kubectl_binary

    def complete(*words: str) -> list[str]:
        out = subprocess.run([kubectl_binary(), "__complete", "mesh", *words],
                             capture_output=True, text=True, timeout=30, env=mesh.env())
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    assert complete("analyze", "--fail") == ["--failure-threshold", ":4"]
    assert complete("analyze", "-o", "") == ["short", "json", "yaml", ":4"]
    assert complete("analyze", "--sup") == ["--suppress", ":4"]
    assert complete("analyze", "") == [":0"]  # file names: the shell's own completion
    assert complete("analyze", "a.yaml", "") == [":0"]
    assert "analyze" in {line.split("\t")[0] for line in complete("an")}


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


def test_a_pod_started_before_its_namespace_was_labelled_has_no_proxy(sandbox, mesh):
    sandbox.kubectl("apply", "-f", "-", input=LATE)
    try:
        result = mesh("analyze", "-n", "late")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Info [IST0102] (Namespace late) The namespace is not "
                                        "enabled for Istio injection."), result.stdout
        assert "IST0103" not in result.stdout  # not injected: no proxy is expected
        sandbox.kubectl("label", "namespace", "late", "istio-injection=enabled")
        result = mesh("analyze", "-n", "late")
        assert result.returncode == 0, result.stderr  # a Warning: below the failure threshold
        assert findings(result) == [
            "Warning [IST0103] (Pod late/web) The pod late/web is missing the Istio proxy. This "
            "can often be resolved by restarting or redeploying the workload."]
        assert mesh("analyze", "-n", "late", "--failure-threshold", "Warning").returncode == 7
    finally:
        sandbox.kubectl("-n", "late", "delete", "pod", "web", "--ignore-not-found", "--wait=false")
        sandbox.kubectl("delete", "namespace", "late", "--wait=false")


def config_map(name: str, mesh_text: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "namespace": "istio-system"},
                       "data": {"mesh": mesh_text}})


def test_mesh_config_of_a_revision_is_read_from_its_configmap(sandbox, mesh):
    """--revision canary reads ConfigMap istio-canary (pilot/pkg/bootstrap/mesh.go
    getMeshConfigMapName); one that is no MeshConfig is one warning naming it, and analysis
    goes on with the defaults; --meshConfigFile replaces it."""
    def mesh_warnings(*args, **kw):
        result = mesh("analyze", "-n", "istioinaction", *args, **kw)
        assert result.returncode == 7 and "IST0101" in result.stdout, result.stderr
        return [line for line in result.stderr.splitlines() if "mesh config" in line]

    assert mesh_warnings("--revision", "canary") == [
        "warning: no mesh config ConfigMap istio-system/istio-canary (is istiod canary "
        "installed there? see --istioNamespace, --revision); using Istio's defaults"]
    sandbox.kubectl("apply", "-f", "-", input=config_map(
        "istio-canary", "rootNamespace: istio-config\ntrustDomain: example.org\n"))
    try:
        assert mesh_warnings("--revision", "canary") == []
        sandbox.kubectl("apply", "-f", "-", input=config_map("istio-broken", "- not a mapping"))
        assert mesh_warnings("--revision", "broken") == [
            "warning: ConfigMap istio-system/istio-broken key mesh: the mesh config is not a "
            "mapping of MeshConfig fields (e.g. 'rootNamespace: istio-system'); using Istio's "
            "defaults"]
    finally:
        sandbox.kubectl("delete", "configmap", "istio-canary", "istio-broken", "-n",
                        "istio-system", "--ignore-not-found")


@pytest.mark.sandbox_istiod_only("on real Istio the scenario's gateway is deployed with "
                                  "gateway injection, whose pods carry the inject label, not "
                                  "the deprecated annotation")
def test_the_gateways_deprecated_inject_annotation(sandbox, mesh):
    """Real istioctl reports the scenario gateway pod's `sidecar.istio.io/inject` annotation
    (docs/real-istio.md finding 9); istiod's pods carry it as a label: nothing there."""
    result = mesh("analyze", "-n", "istio-system")
    assert result.returncode == 0, result.stderr
    deprecated = [line for line in result.stdout.splitlines() if "[IST0135]" in line]
    assert deprecated and all(
        line.startswith("Info [IST0135] (Pod istio-system/istio-ingressgateway-") and
        line.endswith(') Annotation "sidecar.istio.io/inject" has been deprecated in favor of '
                      'the "sidecar.istio.io/inject" label and may not work in future Istio '
                      'versions.') for line in deprecated), result.stdout
    assert "istiod" not in result.stdout
