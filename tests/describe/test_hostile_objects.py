"""describe on objects of the wrong shape (anyone who can create a VirtualService can write
one) and names with control characters: a description, never a traceback, and nothing the
terminal would act on."""

from __future__ import annotations

import io
import json

from kubectl_mesh import output
from tests.describe.objects import describe, pod
from tests.describe.test_traffic import BASE

WRONG_SHAPES = """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shapes, namespace: shop}
spec:
  hosts: catalog
  gateways: 7
  http:
  - "a string"
  - route: {destination: catalog}
  - match: [5, {uri: 7, headers: [x]}]
    route:
    - destination: {host: catalog, subset: [v1], port: 80}
      weight: true
    - {destination: {host: 7}}
    retries: 3
    fault: {delay: 5, abort: {httpStatus: {x: 1}}}
    mirrors: [5, {destination: 7}]
    timeout: {seconds: 1}
  tcp: 5
  tls: ["x", {route: 5}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shapes, namespace: shop}
spec:
  host: catalog
  subsets: [5, {name: {x: 1}, labels: [a]}, {name: v1, labels: {version: v1}}]
  trafficPolicy:
    tls: 5
    loadBalancer: [x]
    outlierDetection: "x"
    portLevelSettings: [5, {port: 8, tls: {mode: [1]}}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: shapes, namespace: shop}
spec: {selector: [x], mtls: "STRICT", portLevelMtls: [80]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: shapes, namespace: shop}
spec: {workloadSelector: 5, egress: ["x", {hosts: 7}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: shapes, namespace: shop}
spec: {selector: {matchLabels: [1]}, rules: 5, action: [DENY]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shapes, namespace: shop}
spec: {selector: [1], servers: [5, {hosts: 5}]}
---
apiVersion: v1
kind: Service
metadata: {name: shapes, namespace: shop}
spec:
  selector: {app: catalog}
  ports: [5, {port: x, targetPort: {a: 1}, name: [1]}, {port: 81, targetPort: 3000}]
"""


def test_wrong_shapes_are_described_not_raised():
    report, text = describe(BASE + WRONG_SHAPES, "catalog-v1", namespace="shop")
    assert text.startswith("Pod: catalog-v1\n")
    assert "Service: shapes" in text and "Effective PeerAuthentication:" in text
    out = io.StringIO()
    output.write(out, "json", data=report)
    assert json.loads(out.getvalue())["kind"] == "pod"


def test_control_characters_in_names_are_escaped():
    hostile = pod("catalog-v1", {"app": "catalog", "version": "v1"}, namespace="shop",
                  ports=(("evil\x1b[2J\nname", 3000, "http"),))
    _, text = describe(BASE.replace(BASE[BASE.index("apiVersion: v1\nkind: Pod"):], "") + hostile,
                       "catalog-v1", namespace="shop")
    assert "\x1b" not in text
    assert "3000 (evil\\x1b[2J\\nname)" in text
