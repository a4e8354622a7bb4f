"""describe's text against istioctl's own expectations: the objects of
istioctl/pkg/describe/describe_test.go (TestDescribe, `service productpage` cases) and the
outputs it expects there, compared line by line.

Where the outputs differ, it is by lines istioctl does not have, each dropped here by name
(EXTRA) and documented in the README: the Service's `Port:` line (istioctl's fixture leaves
the port protocol empty, which a real API server defaults to TCP, so istioctl skips it there
only), the load balancer and outlier detection details, analyze's findings, and the gateway and
curl lines of the ingress exposure. istioctl finds the VirtualService from the proxies' config
dumps (testdata/describe/http_config.json carries it for the sidecar; the gateway's dump is
`{}` except in the ingress case); describe finds it from the objects, so the VirtualService is
bound to what those dumps mean: `mesh`, and `fake-gw` too in the ingress case.
"""

from __future__ import annotations

import re

from tests.describe.objects import describe

EXTRA = re.compile(r"^(   Port: |      Load balancer: |      Outlier detection: |   Gateway: "
                   r"|   curl |   (Error|Warning|Info) \[IST\d{4}\] )")

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: productpage, namespace: default}
spec:
  selector: {app: productpage}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: v1
kind: Pod
metadata: {name: productpage-v1-1234567890, namespace: default, labels: {app: productpage}}
spec:
  containers:
  - {name: productpage, ports: [{name: http, containerPort: 9080}]}
  - {name: istio-proxy}
status:
  phase: Running
  containerStatuses: [{name: istio-proxy, ready: true}]
"""


def ingress(namespace: str, ip: str) -> str:
    return f"""\
---
apiVersion: v1
kind: Service
metadata: {{name: ingress, namespace: {namespace}, labels: {{istio: ingressgateway}}}}
spec:
  selector: {{istio: ingressgateway}}
  ports: [{{name: http, port: 80, targetPort: 80}}]
status: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: ingress, namespace: {namespace}, labels: {{istio: ingressgateway}}}}
spec: {{containers: [{{name: istio-proxy}}]}}
status:
  phase: Running
  containerStatuses: [{{name: istio-proxy, ready: true}}]
"""


VIRTUAL_SERVICE = """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: %s
  gateways: %s
  http:
  - match: [{uri: {prefix: /prefix}}]
    route:
    - {destination: {host: productpage}, weight: 30}
    - {destination: {host: productpage2}, weight: 20}
    - {destination: {host: productpage3}, weight: 50}
"""
DESTINATION_RULE = """\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: productpage, namespace: default}
spec:
  host: productpage
  subsets: [{name: v1, labels: {version: v1}}]
"""
TRAFFIC_POLICY = """\
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {minHealthPercent: 10}
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - loadBalancer: {simple: LEAST_REQUEST}
      port: {number: 8080}
      tls: {mode: DISABLE}
      connectionPool: {tcp: {maxConnections: 10}}
      outlierDetection: {minHealthPercent: 10}
"""
GATEWAY = """\
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: fake-gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: default, protocol: HTTP}
    hosts: [productpage.exapple.com]
"""

# describe_test.go, "case 9, vs route to multiple hosts"
EXPECTED_ROUTES = """\
Service: productpage
DestinationRule: productpage for "productpage"
   WARNING POD DOES NOT MATCH ANY SUBSETS.  (Non matching subsets v1)
   Matching subsets: 
      (Non-matching subsets v1)
   No Traffic Policy
VirtualService: bookinfo
   Route to host "productpage" with weight 30%
   Route to host "productpage2" with weight 20%
   Route to host "productpage3" with weight 50%
   Match: /prefix*
"""
# describe_test.go, "have traffic policy"
EXPECTED_POLICY = """\
Service: productpage
DestinationRule: productpage for "productpage"
   WARNING POD DOES NOT MATCH ANY SUBSETS.  (Non matching subsets v1)
   Matching subsets: 
      (Non-matching subsets v1)
   Traffic Policy TLS Mode: ISTIO_MUTUAL
   Policies: load balancer/connection pool/outlier detection
   Port Level Settings:
    8080:
      TLS Mode: DISABLE
      Policies: load balancer/connection pool/outlier detection
VirtualService: bookinfo
   Route to host "productpage" with weight 30%
   Route to host "productpage2" with weight 20%
   Route to host "productpage3" with weight 50%
   Match: /prefix*
"""
# describe_test.go, "have ingress gateway"
EXPECTED_INGRESS = EXPECTED_POLICY + """\
--------------------
Exposed on Ingress Gateway http://1.1.1.1
Exposed on Ingress Gateway http://2.2.2.2
VirtualService: bookinfo
   Route to host "productpage" with weight 30%
   Route to host "productpage2" with weight 20%
   Route to host "productpage3" with weight 50%
   Match: /prefix*
"""


def without_extra_lines(text: str) -> str:
    return "".join(line + "\n" for line in text.splitlines() if not EXTRA.match(line))


def test_routes_to_several_hosts():
    objects = SERVICE + ingress("default", "2.2.2.2") + VIRTUAL_SERVICE % ("[productpage]", "[mesh]") \
        + DESTINATION_RULE
    _, text = describe(objects, service="productpage")
    assert without_extra_lines(text) == EXPECTED_ROUTES
    assert "   Port: http 9080/HTTP targets pod port 9080\n" in text


def test_traffic_policy():
    objects = SERVICE + ingress("default", "2.2.2.2") + VIRTUAL_SERVICE % ("[productpage]", "[mesh]") \
        + DESTINATION_RULE + TRAFFIC_POLICY
    _, text = describe(objects, service="productpage")
    assert without_extra_lines(text) == EXPECTED_POLICY
    assert "      Load balancer: LEAST_REQUEST\n" in text
    assert "      Outlier detection: minHealthPercent=10\n" in text


def test_ingress_gateways_in_two_namespaces():
    objects = SERVICE + ingress("default", "2.2.2.2") + ingress("istio-ingress", "1.1.1.1") \
        + VIRTUAL_SERVICE % ("[productpage, productpage.exapple.com]", "[fake-gw, mesh]") + DESTINATION_RULE \
        + TRAFFIC_POLICY + GATEWAY
    _, text = describe(objects, service="productpage")
    assert without_extra_lines(text) == EXPECTED_INGRESS
    assert "   Gateway: default/fake-gw, hosts productpage.exapple.com\n" in text
