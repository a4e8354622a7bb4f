"""The analyzers beyond the first twelve codes, each on minimal YAML: what it must report and
what it must not (the texts are istioctl's, checked against the real binary in
tests/real/test_analyze_istioctl.py where offline istioctl runs the same analyzer)."""

from __future__ import annotations

import io
import pathlib
import textwrap

import pytest

from kubectl_mesh.cli.analyze import main
from tests.analyze.test_analyzers import run


def dr(name: str, body: str) -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: ns}}
spec:
{textwrap.indent(textwrap.dedent(body), '  ')}"""


# ---- destinationrule.CaCertificateAnalyzer ----------------------------------------------------

def test_tls_without_ca_is_reported_per_rule_and_per_port():
    text = dr("ext", """\
        host: api.example.com
        trafficPolicy:
          tls: {mode: SIMPLE}
          portLevelSettings:
          - port: {number: 8443}
            tls: {mode: SIMPLE}
          - port: {number: 9443}
            tls: {mode: SIMPLE, caCertificates: /etc/ca.pem}""")
    assert run(text, "destinationrule.CaCertificateAnalyzer") == [
        "Warning [IST0128] (DestinationRule ns/ext t.yaml:3) DestinationRule ns/ext in namespace "
        "ns has TLS mode set to SIMPLE but no caCertificates are set to validate server identity "
        "for host: api.example.com",
        "Warning [IST0129] (DestinationRule ns/ext t.yaml:3) DestinationRule ns/ext in namespace "
        "ns has TLS mode set to SIMPLE but no caCertificates are set to validate server identity "
        "for host: api.example.com at port number:8443"]


def test_tls_with_ca_istio_mutual_or_selected_credential_is_not_reported():
    text = dr("a", """\
        host: a.example.com
        trafficPolicy: {tls: {mode: SIMPLE, caCertificates: /etc/ca.pem}}""") + dr("b", """\
        host: b.example.com
        trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}""") + dr("c", """\
        host: c.example.com
        workloadSelector: {matchLabels: {app: c}}
        trafficPolicy: {tls: {mode: SIMPLE, credentialName: c-ca}}""")
    assert run(text, "destinationrule.CaCertificateAnalyzer") == []


# ---- schema.ValidationAnalyzer ----------------------------------------------------------------

def test_mutual_tls_without_client_certificate_and_wildcard_destination():
    text = dr("m", """\
        host: api.example.com
        trafficPolicy: {tls: {mode: MUTUAL, caCertificates: /ca}}""") + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v, namespace: ns}
spec:
  hosts: [x.example.com]
  http: [{route: [{destination: {host: "*"}}]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g, namespace: ns}
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [web, "ns/*", "*/a.b"]}]
"""
    assert run(text, "schema.ValidationAnalyzer") == [
        "Error [IST0106] (DestinationRule ns/m t.yaml:3) Schema validation error: client "
        "certificate required for mutual tls",
        "Error [IST0106] (DestinationRule ns/m t.yaml:3) Schema validation error: private key "
        "required for mutual tls",
        "Error [IST0106] (Gateway ns/g t.yaml:17) Schema validation error: short names (non "
        "FQDN) are not allowed",
        "Error [IST0106] (VirtualService ns/v t.yaml:10) Schema validation error: invalid "
        "destination host *"]


def test_mutual_tls_with_files_or_credential_name_is_valid():
    text = dr("m", """\
        host: api.example.com
        trafficPolicy:
          tls: {mode: MUTUAL, clientCertificate: /c, privateKey: /k, caCertificates: /ca}
          portLevelSettings:
          - port: {number: 8443}
            tls: {mode: MUTUAL, credentialName: client-cert}""")
    assert run(text, "schema.ValidationAnalyzer") == []


# ---- gateway.ConflictingGatewayAnalyzer --------------------------------------------------------

def gateway(name: str, hosts: str, selector: str = "{istio: ingressgateway}", port: int = 80,
            bind: str = "") -> str:
    extra = f", bind: {bind}" if bind else ""
    return f"""
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: ns}}
spec:
  selector: {selector}
  servers: [{{port: {{number: {port}, name: http, protocol: HTTP}}, hosts: {hosts}{extra}}}]"""


GATEWAY_POD = """
---
apiVersion: v1
kind: Pod
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway, app: gw}}
"""


def test_two_gateways_claiming_one_host_on_one_port_conflict():
    text = gateway("a", "[x.example.com]") + gateway("b", "[x.example.com, y.example.com]") \
        + GATEWAY_POD
    assert run(text, "gateway.ConflictingGatewayAnalyzer") == [
        "Error [IST0145] (Gateway ns/a t.yaml:3) Conflict with gateways ns/b (workload selector "
        "istio=ingressgateway, port 80, hosts x.example.com).",
        "Error [IST0145] (Gateway ns/b t.yaml:10) Conflict with gateways ns/a (workload "
        "selector istio=ingressgateway, port 80, hosts x.example.com,y.example.com)."]


def test_other_port_host_bind_or_pods_is_no_conflict():
    text = (gateway("a", "[x.example.com]") + gateway("b", "[x.example.com]", port=8080)
            + gateway("c", "[y.example.com]") + gateway("d", "[x.example.com]", bind="10.0.0.1")
            + gateway("e", "[x.example.com]", selector="{app: other}") + GATEWAY_POD + """
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: istio-system, labels: {app: other}}
""")
    assert run(text, "gateway.ConflictingGatewayAnalyzer") == []


# ---- sidecar.SelectorAnalyzer ------------------------------------------------------------------

def sidecar(name: str, selector: str = "") -> str:
    spec = f"workloadSelector: {{labels: {selector}}}" if selector else "egress: [{hosts: ['./*']}]"
    return f"""
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}, namespace: ns}}
spec: {{{spec}}}"""


POD = """
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: ns, labels: {app: web, version: v1}}
"""


def test_sidecars_selecting_one_pod_or_none_and_two_without_selector():
    text = (sidecar("s1", "{app: web}") + sidecar("s2", "{version: v1}")
            + sidecar("s3", "{app: nothing}") + sidecar("w1") + sidecar("w2") + POD)
    assert run(text, "sidecar.SelectorAnalyzer") == [
        'Error [IST0101] (Sidecar ns/s3 t.yaml:16) Referenced selector not found: "app=nothing"',
        'Error [IST0110] (Sidecar ns/s1 t.yaml:5) The Sidecars [s1 s2] in namespace "ns" select '
        'the same workload pod "web-1", which can lead to undefined behavior.',
        'Error [IST0110] (Sidecar ns/s2 t.yaml:10) The Sidecars [s1 s2] in namespace "ns" select '
        'the same workload pod "web-1", which can lead to undefined behavior.',
        'Error [IST0111] (Sidecar ns/w1 t.yaml:18) The Sidecars [w1 w2] in namespace "ns" have '
        'no workload selector, which can lead to undefined behavior.',
        'Error [IST0111] (Sidecar ns/w2 t.yaml:23) The Sidecars [w1 w2] in namespace "ns" have '
        'no workload selector, which can lead to undefined behavior.']


def test_one_sidecar_per_pod_and_namespace_is_not_reported():
    text = sidecar("s1", "{app: web}") + sidecar("w1") + POD
    assert run(text, "sidecar.SelectorAnalyzer") == []


# ---- annotations.K8sAnalyzer -------------------------------------------------------------------

def pod(annotations: str, labels: str = "{app: a}") -> str:
    return f"""
---
apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: ns
  labels: {labels}
  annotations: {annotations}
"""


def test_unknown_deprecated_and_misplaced_annotations():
    text = pod('{sidecar.istio.io/inject: "false", foo.istio.io/bar: x, '
               'networking.istio.io/exportTo: "."}')
    assert run(text, "annotations.K8sAnalyzer") == [
        "Warning [IST0107] (Pod ns/p t.yaml:9) Misplaced annotation: "
        "networking.istio.io/exportTo can only be applied to Service",
        "Warning [IST0108] (Pod ns/p t.yaml:9) Unknown annotation: foo.istio.io/bar",
        'Info [IST0135] (Pod ns/p t.yaml:9) Annotation "sidecar.istio.io/inject" has been '
        'deprecated in favor of the "sidecar.istio.io/inject" label and may not work in future '
        'Istio versions.']


def test_known_placed_and_ignored_annotations_are_not_reported():
    text = pod('{sidecar.istio.io/inject: "false", proxy.istio.io/config: "{}", '
               'sidecar.istio.io/status: "{}", istio.io/rev: canary, example.com/x: y}',
               labels='{app: a, sidecar.istio.io/inject: "false"}')
    assert run(text, "annotations.K8sAnalyzer") == []


# ---- deployment.MultiServiceAnalyzer, applicationUID.Analyzer -----------------------------------

def deployment(name: str = "web", inject: str = "true", run_as: str = "") -> str:
    security = f"\n      securityContext: {{runAsUser: {run_as}}}" if run_as else ""
    return f"""
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: ns}}
spec:
  template:
    metadata: {{labels: {{app: web, sidecar.istio.io/inject: "{inject}"}}}}
    spec:{security}
      containers: [{{name: app, image: web}}]"""


def service(name: str, ports: str) -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: ns}}
spec: {{selector: {{app: web}}, ports: {ports}}}"""


def test_services_with_one_port_two_protocols_or_one_target_two_ports():
    text = deployment() + service("a", "[{port: 80, targetPort: 8080}]") + service(
        "b", "[{port: 80, protocol: UDP, targetPort: 8081}, {port: 81, targetPort: 8080}]")
    assert run(text, "deployment.MultiServiceAnalyzer") == [
        "Warning [IST0116] (Deployment ns/web t.yaml:5) This deployment web is associated with "
        "multiple services using port 80 but different protocols: [ns/a ns/b]",
        'Warning [IST0137] (Deployment ns/web t.yaml:5) This deployment web is associated with '
        'multiple services [ns/a ns/b] using targetPort "8080" but different ports: [80 81].']


def test_consistent_services_or_a_deployment_outside_the_mesh_are_not_reported():
    ports = "[{port: 80, targetPort: 8080}]"
    assert run(deployment() + service("a", ports) + service("b", ports),
               "deployment.MultiServiceAnalyzer") == []
    clash = service("a", "[{port: 80}]") + service("b", "[{port: 80, protocol: UDP}]")
    assert run(deployment(inject="false") + clash, "deployment.MultiServiceAnalyzer") == []


def test_uid_1337_of_an_application_is_reported_the_proxy_and_control_plane_are_not():
    assert run(deployment(run_as="1337"), "applicationUID.Analyzer") == [
        "Warning [IST0144] (Deployment ns/web t.yaml:3) User ID (UID) 1337 is reserved for the "
        "sidecar proxy."]
    assert run(deployment(run_as="1000"), "applicationUID.Analyzer") == []
    text = """\
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: ns, labels: {app: p}}
spec:
  containers:
  - {name: istio-proxy, securityContext: {runAsUser: 1337}}
  - {name: app, securityContext: {runAsUser: 1337}}
---
apiVersion: v1
kind: Pod
metadata: {name: istiod, namespace: istio-system, labels: {istio: pilot}}
spec: {securityContext: {runAsUser: 1337}, containers: [{name: discovery}]}
"""
    assert run(text, "applicationUID.Analyzer") == [
        "Warning [IST0144] (Pod ns/p t.yaml:1) User ID (UID) 1337 is reserved for the sidecar "
        "proxy."]


# ---- serviceentry.Analyzer, ConflictingServiceEntryProtocolAnalyzer, --meshConfigFile ----------

DATA = pathlib.Path(__file__).resolve().parent / "data"


def analyze_files(*args: str) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--use-kube=false", "-A", *args], stdout=out, stderr=err)
    return code, out.getvalue().splitlines(), err.getvalue()


def test_service_entries_without_addresses_and_with_conflicting_protocols():
    path = str(DATA / "serviceentries.yaml")
    code, lines, _ = analyze_files(path)
    assert code == 0  # warnings only
    assert lines == [
        f"Warning [IST0133] (ServiceEntry ns/db {path}:1) Schema validation warning: addresses "
        "are required for ports serving TCP (or unset) protocol when IP Autoallocation is not "
        "enabled",
        f"Warning [IST0134] (ServiceEntry ns/db {path}:10) ServiceEntry addresses are required "
        "for this protocol.",
        f"Warning [IST0134] (ServiceEntry ns/dns {path}:29) ServiceEntry addresses are required "
        "for this protocol.",
        f"Warning [IST0134] (ServiceEntry ns/optout {path}:38) ServiceEntry addresses are "
        "required for this protocol.",
        f'Warning [IST0177] (ServiceEntry ns/db {path}:6) Multiple ServiceEntries (ns/db, '
        f'other/db2) define the same host "db.example.com" and port 80 with conflicting '
        f'protocols (GRPC, HTTP).',
        f'Warning [IST0177] (ServiceEntry other/db2 {path}:15) Multiple ServiceEntries (ns/db, '
        f'other/db2) define the same host "db.example.com" and port 80 with conflicting '
        f'protocols (GRPC, HTTP).']


def test_mesh_config_file_with_auto_allocation_drops_ist0134():
    code, lines, _ = analyze_files(str(DATA / "serviceentries.yaml"), "--meshConfigFile",
                                   str(DATA / "mesh-autoallocate.yaml"))
    assert code == 0
    codes = [line.split("]")[0].split("[")[1] for line in lines]
    assert codes == ["IST0133", "IST0177", "IST0177"]


def test_mesh_config_root_namespace_decides_the_mesh_wide_peer_authentication(tmp_path):
    # a mesh-wide STRICT PeerAuthentication in `mesh-root` conflicts with a DISABLE rule only
    # when the mesh config names mesh-root as the root namespace
    text = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ns}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: mesh-root}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: ns}
spec: {host: web, trafficPolicy: {tls: {mode: DISABLE}}}
"""
    assert run(text, "auth.MTLSAnalyzer") == []
    from kubectl_mesh.analyze import files
    from kubectl_mesh.analyze.analyzers import all_analyzers
    from kubectl_mesh.analyze.command import analyze
    from kubectl_mesh.analyze.meshconfig import parse
    from kubectl_mesh.analyze.resources import Store

    store = Store(parse("rootNamespace: mesh-root\n", "mesh.yaml"))
    store.extend(files.parse(text, "t.yaml", "ns"))
    chosen = [a for a in all_analyzers() if a.name == "auth.MTLSAnalyzer"]
    assert [m.type.code for m in analyze(store, chosen, None)] == ["IST0113"]


@pytest.mark.parametrize("content, code, text", [
    (None, 3, "mesh config file"),
    ("a: [\n", 6, ":2: invalid YAML in the mesh config"),
    ("- a list\n", 6, "the mesh config is not a mapping"),
], ids=["missing", "invalid-yaml", "not-a-mapping"])
def test_bad_mesh_config_file_is_one_line(tmp_path, content, code, text):
    path = tmp_path / "mesh.yaml"
    if content is not None:
        path.write_text(content)
    result = analyze_files(str(DATA / "serviceentries.yaml"), "--meshConfigFile", str(path))
    assert result[0] == code and result[1] == []
    assert text in result[2] and len(result[2].strip().splitlines()) == 1, result[2]


# ---- auth.AuthorizationPoliciesAnalyzer --------------------------------------------------------

NAMESPACES = """\
apiVersion: v1
kind: Namespace
metadata: {name: ns, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: empty}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: ns, labels: {app: web}}
spec: {containers: [{name: app, image: web}]}
"""


def policy(name: str, namespace: str, spec: str) -> str:
    return f"""---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {namespace}}}
spec: {spec}
"""


def test_policies_selecting_nothing_and_naming_missing_namespaces():
    text = NAMESPACES + policy("nothing", "ns", "{selector: {matchLabels: {app: api}}}") \
        + policy("mesh-nothing", "istio-system", "{selector: {matchLabels: {app: api}}}") \
        + policy("empty-ns", "empty", "{}") + policy("from", "ns", """
  rules:
  - from:
    - source: {namespaces: [ns, "istio-*", "*-prod", nowhere], notNamespaces: [gone]}""")
    assert run(text, "auth.AuthorizationPoliciesAnalyzer") == [
        'Error [IST0101] (AuthorizationPolicy ns/from t.yaml:39) Referenced namespace not '
        'found: "*-prod"',
        'Error [IST0101] (AuthorizationPolicy ns/from t.yaml:39) Referenced namespace not '
        'found: "gone"',
        'Error [IST0101] (AuthorizationPolicy ns/from t.yaml:39) Referenced namespace not '
        'found: "nowhere"',
        "Warning [IST0127] (AuthorizationPolicy empty/empty-ns t.yaml:28) No matching workloads "
        "for this resource with the following labels: ",
        "Warning [IST0127] (AuthorizationPolicy istio-system/mesh-nothing t.yaml:23) No "
        "matching workloads for this resource with the following labels: app=api",
        "Warning [IST0127] (AuthorizationPolicy ns/nothing t.yaml:18) No matching workloads for "
        "this resource with the following labels: app=api"]


def test_policies_matching_mesh_pods_and_existing_namespaces_are_not_reported():
    text = NAMESPACES + policy("web", "ns", "{selector: {matchLabels: {app: web}}}") \
        + policy("mesh-web", "istio-system", "{selector: {matchLabels: {app: web}}}") \
        + policy("mesh-wide", "istio-system", "{}") + policy("ns-wide", "ns", """
  rules: [{from: [{source: {namespaces: [ns, "istio-*", "*", "*system"]}}]}]""")
    assert run(text, "auth.AuthorizationPoliciesAnalyzer") == []


# ---- virtualservice.JWTClaimRouteAnalyzer ------------------------------------------------------

JWT_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: by-group, namespace: ns}
spec:
  hosts: [web.example.com]
  gateways: [istio-system/gw, mesh]
  http:
  - match: [{headers: {"@request.auth.claims.group": {exact: admin}}}]
    route: [{destination: {host: web}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: ingress-1, namespace: istio-system, labels: {istio: ingressgateway}}
"""
REQUEST_AUTHN = """---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules: [{issuer: issuer}]
"""


def test_jwt_claim_route_without_request_authentication():
    assert run(JWT_VS, "virtualservice.JWTClaimRouteAnalyzer") == [
        "Error [IST0149] (VirtualService ns/by-group t.yaml:1) The virtual service uses the JWT "
        "claim based routing (key: @request.auth.claims.group) but found no request "
        "authentication for the gateway (istio-system/gw) pod (ingress-1). The request "
        "authentication must first be applied for the gateway pods to validate the JWT token "
        "and make the claims available for routing."]


def test_jwt_claim_route_with_request_authentication_or_plain_headers_is_not_reported():
    assert run(JWT_VS + REQUEST_AUTHN, "virtualservice.JWTClaimRouteAnalyzer") == []
    plain = JWT_VS.replace("@request.auth.claims.group", "x-group")
    assert run(plain, "virtualservice.JWTClaimRouteAnalyzer") == []
    bare = JWT_VS.replace("@request.auth.claims.group", "@request.auth.claims")
    assert run(bare, "virtualservice.JWTClaimRouteAnalyzer") == []


# ---- injection.ImageAnalyzer -------------------------------------------------------------------

def image_mismatches(text: str, mesh: str = "") -> list[str]:
    import json

    from kubectl_mesh.analyze import files
    from kubectl_mesh.analyze.analyzers import all_analyzers
    from kubectl_mesh.analyze.command import analyze
    from kubectl_mesh.analyze.meshconfig import parse
    from kubectl_mesh.analyze.resources import Resource, Store

    store = Store(parse(mesh, "mesh.yaml"))
    store.extend(files.parse(text, "t.yaml", "ns"))
    for name, tag in (("istio-sidecar-injector", "1.28.0"), ("istio-sidecar-injector-canary",
                                                              "1.29.0")):
        values = {"global": {"hub": "docker.io/istio", "tag": tag, "proxy": {"image": "proxyv2"}}}
        store.add(Resource("ConfigMap", "istio-system", name,
                           {"data": {"values": json.dumps(values)}}))
    chosen = [a for a in all_analyzers() if a.name == "injection.ImageAnalyzer"]
    return [str(m) for m in analyze(store, chosen, None)]


def image_pod(name: str, image: str, namespace: str = "ns", annotations: str = "{}") -> str:
    return f"""---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}, annotations: {annotations}}}
spec: {{containers: [{{name: app, image: app}}, {{name: istio-proxy, image: "{image}"}}]}}
"""


IMAGE_NAMESPACES = """\
apiVersion: v1
kind: Namespace
metadata: {name: ns, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: canary, labels: {istio.io/rev: canary}}
---
apiVersion: v1
kind: Namespace
metadata: {name: plain}
"""


def test_proxy_images_other_than_the_injectors_are_reported_per_namespace():
    text = (IMAGE_NAMESPACES + image_pod("old-b", "docker.io/istio/proxyv2:1.27.0")
            + image_pod("old-a", "docker.io/istio/proxyv2:1.26.0")
            + image_pod("current", "docker.io/istio/proxyv2:1.28.0")
            + image_pod("canary-old", "docker.io/istio/proxyv2:1.28.0", namespace="canary"))
    assert image_mismatches(text) == [
        "Warning [IST0158] (Namespace canary t.yaml:5) The Istio proxy images of the pods "
        "running in the namespace do not match the image defined in the injection "
        "configuration (pod names: [canary-old]). This often happens after upgrading the Istio "
        "control-plane and can be fixed by redeploying the pods.",
        "Warning [IST0158] (Namespace ns t.yaml:1) The Istio proxy images of the pods running in "
        "the namespace do not match the image defined in the injection configuration (pod "
        "names: [old-a old-b]). This often happens after upgrading the Istio control-plane and "
        "can be fixed by redeploying the pods."]


def test_matching_variant_custom_image_and_uninjected_namespace_are_not_reported():
    text = (IMAGE_NAMESPACES
            + image_pod("distroless", "docker.io/istio/proxyv2:1.28.0-distroless")
            + image_pod("custom", "example.com/proxy:x",
                        annotations='{sidecar.istio.io/proxyImage: "example.com/proxy:x"}')
            + image_pod("debug", "docker.io/istio/proxyv2:1.28.0-debug",
                        annotations='{proxy.istio.io/config: "image: {imageType: debug}"}')
            + image_pod("elsewhere", "docker.io/istio/proxyv2:1.0.0", namespace="plain"))
    assert image_mismatches(text, "defaultConfig: {image: {imageType: distroless}}\n") == []
    # without the mesh config's image type, the distroless pod is one
    assert "[distroless]" in image_mismatches(text)[0]


# ---- deprecation.DeprecationAnalyzer -----------------------------------------------------------

def test_deprecated_fault_percent_and_egress_proxy():
    path = str(DATA / "deprecated-fields.yaml")
    code, lines, _ = analyze_files(path)
    assert code == 0
    assert lines == [
        f"Warning [IST0002] (Sidecar ns/egress {path}:21) Deprecated: "
        "OutboundTrafficPolicy.EgressProxy ignored",
        f"Warning [IST0002] (VirtualService ns/slow {path}:1) Deprecated: "
        "HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage"]


# ---- externalcontrolplane.ExternalControlPlaneAnalyzer ----------------------------------------

def webhooks(kind: str, name: str, *client_configs: str) -> str:
    hooks = "".join(f"\n- name: h{i}.istio.io\n  clientConfig: {c}"
                    for i, c in enumerate(client_configs))
    return f"""
---
apiVersion: admissionregistration.k8s.io/v1
kind: {kind}
metadata: {{name: {name}}}
webhooks:{hooks}
"""


def test_istio_webhooks_by_ip_url_blank_or_unparsable_are_reported_per_webhook():
    text = webhooks("MutatingWebhookConfiguration", "istio-sidecar-injector-ext",
                    '{url: "https://10.0.0.1:15017/inject"}', '{url: "https://istiod.ext/inject"}',
                    '{url: "https://istiod ext/inject"}') + webhooks(
        "ValidatingWebhookConfiguration", "istio-validator-ext-istio-system", "{}",
        "{service: {name: istiod, namespace: istio-system}}")
    assert run(text, "externalcontrolplane.ExternalControlPlaneAnalyzer") == [
        "Warning [IST0163] (MutatingWebhookConfiguration istio-sidecar-injector-ext t.yaml:3) "
        "The hostname (https://istiod ext/inject) that was provided for the webhook "
        "(h2.istio.io) to reach the ingress gateway on the external control plane cluster was "
        "provided in an invalid format. Traffic may not flow properly.",
        "Warning [IST0163] (ValidatingWebhookConfiguration istio-validator-ext-istio-system "
        "t.yaml:15) The hostname () that was provided for the webhook (h0.istio.io) to reach the "
        "ingress gateway on the external control plane cluster is blank. Traffic may not flow "
        "properly.",
        "Info [IST0164] (MutatingWebhookConfiguration istio-sidecar-injector-ext t.yaml:3) The "
        "address (https://10.0.0.1:15017/inject) that was provided for the webhook (h0.istio.io) "
        "to reach the ingress gateway on the external control plane cluster is an IP address. "
        "This is not recommended for a production environment."]


def test_webhooks_not_named_as_istios_or_called_by_service_are_not_reported():
    ip = '{url: "https://10.0.0.1/x"}'
    text = (webhooks("MutatingWebhookConfiguration", "my-injector", ip, "{}")
            + webhooks("ValidatingWebhookConfiguration", "my-validator", ip)
            # istio-validator* and istiod-default-validator are validators only
            + webhooks("MutatingWebhookConfiguration", "istiod-default-validator", ip)
            + webhooks("ValidatingWebhookConfiguration", "istio-sidecar-injector", ip)
            + webhooks("MutatingWebhookConfiguration", "istio-sidecar-injector",
                       "{service: {name: istiod, namespace: istio-system}}",
                       '{url: ""}'))
    assert run(text, "externalcontrolplane.ExternalControlPlaneAnalyzer") == []


# Go 1.26's url.Parse(u).Hostname() and net.ParseIP on it, as istioctl's lintWebhookURL calls
# them (None: url.Parse fails); the answers were printed by a Go program with these URLs.
GO_URLS = [
    ("https://1.1.1.1:5100/inject", "1.1.1.1", True),
    ("https://test.com/inject", "test.com", False),
    ("https://[2001:db8::1]:15017/x", "2001:db8::1", True),
    ("https://[2001:db8::1%25eth0]:15017/x", "2001:db8::1%eth0", False),
    ("https://[fe80::1%25en%200]/x", "fe80::1%en 0", False),
    ("https://[1.2.3.4]/x", None, False),
    ("https://[::ffff:1.2.3.4]/x", "::ffff:1.2.3.4", True),
    ("https://x[::1]/x", None, False),
    ("https://[::1/x", None, False),
    ("https://[::1]x/x", None, False),
    ("https://host:port/x", None, False),
    ("https://host:15017:1/x", None, False),
    ("ftp://host:15017:1/x", "host:15017", False),
    ("https://user:pa ss@host/x", None, False),
    ("https://user@1.2.3.4/x", "1.2.3.4", True),
    ("https://us%zzer@host/x", None, False),
    ("https://host/%zz", None, False),
    ("https://host/x#%zz", None, False),
    ("https://host/x?%zz", "host", False),
    ("https://ho%41st/", None, False),
    ("https://ho%c3%a9st/", "ho\u00e9st", False),
    ("https://ho\u00e9st/", "ho\u00e9st", False),
    ("https://ho{st/", None, False),
    ("https://host name/", None, False),
    ("https://01.1.1.1/", "01.1.1.1", False),
    ("https://1.1.1.01/", "1.1.1.01", False),
    ("https://1.1.1/", "1.1.1", False),
    ("https://1.1.1.1.1/", "1.1.1.1.1", False),
    ("https:1.1.1.1", "", False),
    ("//1.1.1.1/x", "1.1.1.1", True),
    ("1.1.1.1:15017/x", None, False),
    (":foo", None, False),
    ("*", "", False),
    ("https://[::1]:/x", "::1", True),
    ("https://1.1.1.1:/x", "1.1.1.1", True),
    ("https://1.1.1.1:abc/x", None, False),
    ("HTTPS://2.2.2.2/x", "2.2.2.2", True),
    ("https://[::1%25]/x", None, False),
    ("https://<host>/x", "<host>", False),
    ('https://"host"/x', '"host"', False),
    ("https://[2001:db8::1]", "2001:db8::1", True),
    ("https://host/a b", "host", False),
    ("https://ho\tst/", None, False),
]


@pytest.mark.parametrize("url,hostname,is_ip", GO_URLS)
def test_webhook_urls_parse_as_gos_net_url_parses_them(url, hostname, is_ip):
    from kubectl_mesh.analyze.analyzers.externalcontrolplane import _is_ip, url_hostname

    assert url_hostname(url) == hostname
    assert hostname is None or _is_ip(hostname) == is_ip


def test_a_cluster_scoped_webhook_configuration_is_reported_in_any_namespace():
    """istioctl keeps messages about cluster-scoped objects whatever -n says
    (pkg/config/analysis/local/istiod_analyze.go filterMessages)."""
    path = str(DATA / "webhooks.yaml")
    out, err = io.StringIO(), io.StringIO()
    code = main(["--use-kube=false", "-n", "istioinaction", path], stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    assert code == 0, err.getvalue()
    assert [line.split("]")[0] for line in lines] == \
        ["Warning [IST0163"] * 3 + ["Info [IST0164"] * 3
    assert all("WebhookConfiguration " in line for line in lines)
