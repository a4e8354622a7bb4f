"""Each analyzer on minimal YAML: what it must report, and what it must not."""

from __future__ import annotations

import textwrap

import pytest

from kubectl_mesh.analyze import files
from kubectl_mesh.analyze.analyzers import all_analyzers
from kubectl_mesh.analyze.command import analyze
from kubectl_mesh.analyze.resources import Store


def run(text: str, analyzer: str) -> list[str]:
    """The messages one analyzer reports on `text` (file `t.yaml`, default namespace `ns`)."""
    store = Store()
    store.extend(files.parse(textwrap.dedent(text), "t.yaml", "ns"))
    chosen = [a for a in all_analyzers() if a.name == analyzer]
    assert chosen, analyzer
    return [str(m) for m in analyze(store, chosen, None)]


SVC = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: ns}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
"""
POD_V1 = """
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: ns, labels: {app: reviews, version: v1}}
spec: {containers: [{name: app}, {name: istio-proxy}]}
"""


def vs(destinations: str, extra: str = "") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: r, namespace: ns}}
spec:
  hosts: [reviews]{extra}
  http:
  - route:
{textwrap.indent(textwrap.dedent(destinations), '    ')}"""


# ---- virtualservice.DestinationRuleAnalyzer ------------------------------------------------

DR = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: ns}
spec:
  host: reviews.ns.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}]
"""


@pytest.mark.parametrize("host", ["reviews", "reviews.ns.svc.cluster.local"], ids=["short", "fqdn"])
def test_subset_defined_for_the_host_is_not_reported(host):
    text = vs(f"- destination: {{host: {host}, subset: v1}}") + DR
    assert run(text, "virtualservice.DestinationRuleAnalyzer") == []


def test_subset_missing_is_reported_at_its_line():
    text = vs("""\
        - destination: {host: reviews, subset: v1}
          weight: 50
        - destination: {host: reviews, subset: v2}
          weight: 50""") + DR
    assert run(text, "virtualservice.DestinationRuleAnalyzer") == [
        'Error [IST0101] (VirtualService ns/r t.yaml:12) Referenced host+subset in '
        'destinationrule not found: "reviews+v2"']


def test_subset_of_another_namespaces_host_is_not_this_one():
    text = vs("- destination: {host: reviews, subset: v1}") + DR.replace(
        "reviews.ns.svc", "reviews.other.svc")
    assert [m.split(")")[0] for m in run(text, "virtualservice.DestinationRuleAnalyzer")] == [
        "Error [IST0101] (VirtualService ns/r t.yaml:10"]


def test_mirror_subset_is_checked():
    text = vs("- destination: {host: reviews}", ) + "\n    mirror: {host: reviews, subset: v9}\n"
    assert run(text, "virtualservice.DestinationRuleAnalyzer") == [
        'Error [IST0101] (VirtualService ns/r t.yaml:11) Referenced mirror+subset in '
        'destinationrule not found: "reviews+v9"']


# ---- virtualservice.DestinationHostAnalyzer ------------------------------------------------

SE = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: other}
spec:
  hosts: ["*.example.com", api.ext.io]
  ports: [{number: 443, name: https, protocol: HTTPS}]
"""


@pytest.mark.parametrize("host", ["reviews", "reviews.ns.svc.cluster.local", "api.ext.io",
                                  "www.example.com"],
                         ids=["short-name", "fqdn", "service-entry", "service-entry-wildcard"])
def test_known_hosts_are_not_reported(host):
    assert run(SVC + vs(f"- destination: {{host: {host}}}") + SE,
               "virtualservice.DestinationHostAnalyzer") == []


def test_unknown_host_and_short_name_of_another_namespace():
    text = SVC.replace("namespace: ns", "namespace: other") + vs(
        "- destination: {host: reviews}")
    assert run(text, "virtualservice.DestinationHostAnalyzer") == [
        'Error [IST0101] (VirtualService ns/r t.yaml:17) Referenced host not found: "reviews"']


def test_port_missing_and_port_needed():
    two_ports = SVC.replace("ports: [{name: http, port: 9080}]",
                            "ports: [{name: http, port: 9080}, {name: grpc, port: 9090}]")
    assert run(two_ports + vs("- destination: {host: reviews}"),
               "virtualservice.DestinationHostAnalyzer") == [
        'Error [IST0112] (VirtualService ns/r t.yaml:17) This VirtualService routes to a service '
        '"reviews" that exposes multiple ports [9080 9090]. Specifying a port in the destination '
        'is required to disambiguate.']
    assert run(SVC + vs("- destination: {host: reviews, port: {number: 80}}"),
               "virtualservice.DestinationHostAnalyzer") == [
        'Error [IST0101] (VirtualService ns/r t.yaml:17) Referenced host:port not found: '
        '"reviews:80"']


# ---- virtualservice.GatewayAnalyzer --------------------------------------------------------

GW = """
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*.example.com"]}]
"""


def test_gateway_that_exists_and_accepts_the_host_is_not_reported():
    text = vs("- destination: {host: reviews}", "\n  gateways: [gw, mesh]").replace(
        "hosts: [reviews]", "hosts: [reviews.example.com]") + GW
    assert run(text, "virtualservice.GatewayAnalyzer") == []


def test_missing_gateway_and_host_not_in_gateway():
    text = vs("- destination: {host: reviews}", "\n  gateways: [nogw, gw]") + GW
    assert run(text, "virtualservice.GatewayAnalyzer") == [
        'Error [IST0101] (VirtualService ns/r t.yaml:8) Referenced gateway not found: "nogw"',
        'Warning [IST0132] (VirtualService ns/r t.yaml:8) one or more host [reviews] defined in '
        'VirtualService ns/r not found in Gateway ns/gw.',
        'Warning [IST0132] (VirtualService ns/r t.yaml:8) one or more host [reviews] defined in '
        'VirtualService ns/r not found in Gateway ns/nogw.']


# ---- virtualservice.ConflictingMeshGatewayHostsAnalyzer ------------------------------------

def test_two_virtualservices_claiming_one_host_on_the_mesh():
    a = vs("- destination: {host: reviews}")
    b = a.replace("name: r,", "name: s,").replace("hosts: [reviews]",
                                                  "hosts: [reviews.ns.svc.cluster.local]")
    messages = run(a + b, "virtualservice.ConflictingMeshGatewayHostsAnalyzer")
    assert [m.split(")")[0] for m in messages] == [
        "Error [IST0109] (VirtualService ns/r t.yaml:5", "Error [IST0109] (VirtualService ns/s t.yaml:14"]
    assert "The VirtualServices ns/r,ns/s associated with mesh gateway define the same host " \
           "*/reviews.ns.svc.cluster.local" in messages[0]


def test_same_host_on_a_gateway_only_or_exported_apart_is_no_conflict():
    a = vs("- destination: {host: reviews}")
    on_gateway = a.replace("name: r,", "name: s,").replace("hosts: [reviews]",
                                                           "hosts: [reviews]\n  gateways: [gw]")
    assert run(a + on_gateway, "virtualservice.ConflictingMeshGatewayHostsAnalyzer") == []
    local = a.replace("name: r,", "name: s,").replace("hosts: [reviews]",
                                                      "hosts: [reviews]\n  exportTo: [other]")
    assert run(a.replace("hosts: [reviews]", "hosts: [reviews]\n  exportTo: ['.']") + local,
               "virtualservice.ConflictingMeshGatewayHostsAnalyzer") == []


# ---- destinationrule.SubsetSelectPodAnalyzer -----------------------------------------------

def test_subset_selecting_pods_is_not_reported_and_one_selecting_none_is():
    text = SVC + POD_V1 + DR.replace("subsets: [{name: v1, labels: {version: v1}}]",
                                     "subsets: [{name: v1, labels: {version: v1}}, "
                                     "{name: v2, labels: {version: v2}}]")
    assert run(text, "destinationrule.SubsetSelectPodAnalyzer") == [
        "Error [IST0173] (DestinationRule ns/reviews t.yaml:16) The Subset v2 defined in the "
        "DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream)."]


def test_destinationrule_for_an_unknown_host():
    assert run(POD_V1 + DR, "destinationrule.SubsetSelectPodAnalyzer") == [
        "Warning [IST0174] (DestinationRule ns/reviews t.yaml:9) The host "
        "reviews.ns.svc.cluster.local defined in the DestinationRule does not match any services "
        "in the mesh."]


# ---- gateway.IngressGatewayPortAnalyzer / gateway.SecretAnalyzer ---------------------------

GW_POD = """
---
apiVersion: v1
kind: Pod
metadata: {name: ingress, namespace: istio-system, labels: {istio: ingressgateway}}
spec: {containers: [{name: istio-proxy}]}
---
apiVersion: v1
kind: Service
metadata: {name: ingress, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  selector: {istio: ingressgateway}
  ports: [{name: http2, port: 80, targetPort: 8080}]
"""


def test_gateway_selecting_a_pod_on_a_service_port_is_not_reported():
    assert run(GW + GW_POD, "gateway.IngressGatewayPortAnalyzer") == []


def test_gateway_selector_matching_no_pod_and_port_not_on_the_service():
    assert run(GW, "gateway.IngressGatewayPortAnalyzer") == [
        'Error [IST0101] (Gateway ns/gw t.yaml:7) Referenced selector not found: '
        '"istio=ingressgateway"']
    on_443 = GW.replace("number: 80", "number: 443")
    assert run(on_443 + GW_POD, "gateway.IngressGatewayPortAnalyzer") == [
        "Warning [IST0162] (Gateway ns/gw t.yaml:7) The gateway is listening on a target port "
        "(port 443) that is not defined in the Service associated with its workload instances "
        "(Pod selector istio=ingressgateway). If you need to access the gateway port through the "
        "gateway Service, it will not be available."]


def test_credential_name_without_a_secret():
    tls = GW.replace('hosts: ["*.example.com"]}]',
                     'hosts: ["*.example.com"], tls: {mode: SIMPLE, credentialName: cert}}]')
    secret = """
---
apiVersion: v1
kind: Secret
metadata: {name: cert, namespace: istio-system}
"""
    assert run(tls + GW_POD + secret, "gateway.SecretAnalyzer") == []
    # the secret must be where the gateway's pods run, not where the Gateway object is
    assert run(tls + GW_POD + secret.replace("istio-system", "ns"), "gateway.SecretAnalyzer") == [
        'Error [IST0101] (Gateway ns/gw t.yaml:8) Referenced credentialName not found: "cert"']


# ---- service.PortNameAnalyzer --------------------------------------------------------------

@pytest.mark.parametrize("port", ["{name: http, port: 80}", "{name: http-web, port: 80}",
                                  "{name: grpc-web, port: 80}", "{name: x, port: 80, appProtocol: http}",
                                  "{name: dns, port: 53}", "{name: foo, port: 53, protocol: UDP}"],
                         ids=["http", "http-suffix", "grpc-web", "appProtocol", "well-known",
                              "udp"])
def test_port_names_istio_understands(port):
    assert run(SVC.replace("{name: http, port: 9080}", port), "service.PortNameAnalyzer") == []


def test_port_name_istio_cannot_read():
    text = SVC.replace("{name: http, port: 9080}", "{name: web, port: 8080, targetPort: 80}")
    assert run(text, "service.PortNameAnalyzer") == [
        "Info [IST0118] (Service ns/reviews t.yaml:7) Port name web (port: 8080, targetPort: 80) "
        "doesn't follow the naming convention of Istio port."]
    control_plane = text.replace("metadata: {name: reviews, namespace: ns}",
                                 "metadata: {name: reviews, namespace: ns, labels: {istio: pilot}}")
    assert run(control_plane, "service.PortNameAnalyzer") == []


# ---- injection.Analyzer --------------------------------------------------------------------

NS = """
apiVersion: v1
kind: Namespace
metadata: {name: ns, labels: {istio-injection: enabled}}
"""


def test_injection():
    no_proxy = POD_V1.replace(", {name: istio-proxy}", "")
    assert run(NS + POD_V1, "injection.Analyzer") == []
    assert run(NS + no_proxy, "injection.Analyzer") == [
        "Warning [IST0103] (Pod ns/reviews-v1 t.yaml:7) The pod ns/reviews-v1 is missing the "
        "Istio proxy. This can often be resolved by restarting or redeploying the workload."]
    opted_out = no_proxy.replace("labels: {app", "annotations: {sidecar.istio.io/inject: 'false'}"
                                                 ", labels: {app")
    assert run(NS + opted_out, "injection.Analyzer") == []
    assert run(NS.replace("istio-injection: enabled", "x: y"), "injection.Analyzer") == [
        "Info [IST0102] (Namespace ns t.yaml:4) The namespace is not enabled for Istio injection. "
        "Run 'kubectl label namespace ns istio-injection=enabled' to enable it, or 'kubectl "
        "label namespace ns istio-injection=disabled' to explicitly mark it as not needing "
        "injection."]
    assert run(NS.replace("istio-injection: enabled", "istio-injection: disabled") + no_proxy,
               "injection.Analyzer") == []


# ---- auth.MTLSAnalyzer ----------------------------------------------------------------------

def pa(name: str, namespace: str, mode: str, selector: str = "") -> str:
    return f"""
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {namespace}}}
spec:{selector}
  mtls: {{mode: {mode}}}
"""


DR_PLAIN = DR.replace("  subsets:", "  trafficPolicy:\n    tls: {mode: DISABLE}\n  subsets:")


def test_plaintext_destinationrule_toward_strict_workloads():
    expected = [
        'Error [IST0113] (DestinationRule ns/reviews t.yaml:16) A DestinationRule and Policy are '
        'in conflict with regards to mTLS for host reviews.ns.svc.cluster.local. The '
        'DestinationRule "ns/reviews" specifies that mTLS must be false but the Policy object '
        '"{policy}" specifies STRICT.']
    for policy in (pa("strict", "ns", "STRICT"), pa("mesh", "istio-system", "STRICT"),
                   pa("w", "ns", "STRICT", "\n  selector: {matchLabels: {app: reviews}}")):
        got = run(SVC + DR_PLAIN + policy, "auth.MTLSAnalyzer")
        ns_name = [line for line in policy.splitlines() if line.startswith("metadata")][0]
        pa_name = ns_name.split("name: ")[1].split(",")[0]
        pa_ns = ns_name.split("namespace: ")[1].rstrip("}")
        assert got == [expected[0].format(policy=f"{pa_ns}/{pa_name}")], policy


def test_mtls_settings_that_agree_are_not_reported():
    # the namespace's PERMISSIVE overrides the mesh-wide STRICT; a selector for other pods
    # does not apply; ISTIO_MUTUAL toward STRICT is what STRICT wants
    assert run(SVC + DR_PLAIN + pa("mesh", "istio-system", "STRICT") + pa("ns", "ns", "PERMISSIVE"),
               "auth.MTLSAnalyzer") == []
    assert run(SVC + DR_PLAIN + pa("w", "ns", "STRICT", "\n  selector: {matchLabels: {app: other}}"),
               "auth.MTLSAnalyzer") == []
    assert run(SVC + DR_PLAIN.replace("DISABLE", "ISTIO_MUTUAL") + pa("s", "ns", "STRICT"),
               "auth.MTLSAnalyzer") == []
    assert run(SVC + DR + pa("s", "ns", "STRICT"), "auth.MTLSAnalyzer") == []


def test_istio_mutual_toward_workloads_that_disable_mtls():
    got = run(SVC + DR_PLAIN.replace("DISABLE", "ISTIO_MUTUAL") + pa("plaintext", "ns", "DISABLE"),
              "auth.MTLSAnalyzer")
    assert len(got) == 1
    assert 'specifies that mTLS must be true but the Policy object "ns/plaintext" specifies DISABLE.' \
        in got[0]
