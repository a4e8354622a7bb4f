"""describe units, DestinationRule and VirtualService sections."""

from __future__ import annotations

from tests.describe.objects import describe, pod

BASE = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  selector: {app: catalog}
  ports: [{name: http, port: 80, targetPort: 3000}]
---
""" + pod("catalog-v1", {"app": "catalog", "version": "v1"}, namespace="shop",
          ports=(("catalog", 3000, "http"),)) + "---\n" + \
    pod("catalog-v2", {"app": "catalog", "version": "v2"}, namespace="shop",
        ports=(("catalog", 3000, "http"),))

SPLIT = """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog-v1-v2, namespace: shop}
spec:
  hosts: [catalog]
  http:
  - route:
    - destination: {host: catalog.shop.svc.cluster.local, subset: version-v1}
      weight: 20
    - destination: {host: catalog.shop.svc.cluster.local, subset: version-v2}
      weight: 80
"""
DR = """\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  host: catalog
  subsets:
  - {name: version-v1, labels: {version: v1}}
  - {name: version-v2, labels: {version: v2}}
"""


def section(text: str, header: str) -> list[str]:
    """The lines from `header` to the next unindented line."""
    lines = text.splitlines()
    start = lines.index(header)
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")),
               len(lines))
    return lines[start:end]


def test_a_20_80_split_to_subsets_no_destination_rule_defines():
    report, text = describe(BASE + SPLIT, "catalog-v1", namespace="shop")
    assert section(text, "VirtualService: catalog-v1-v2") == [
        "VirtualService: catalog-v1-v2",
        '   Route to host "catalog.shop.svc.cluster.local" subset "version-v1" with weight 20%',
        "      Warning: Route to subset version-v1 but NO DESTINATION RULE defining subsets!",
        '   Route to host "catalog.shop.svc.cluster.local" subset "version-v2" with weight 80%',
        "      Warning: Route to subset version-v2 but NO DESTINATION RULE defining subsets!",
        "   WARNING: No destinations match pod subsets (checked 1 HTTP routes)",
        # analyze's findings about the VirtualService, under it
        "   Error [IST0101] Referenced host+subset in destinationrule not found: "
        '"catalog.shop.svc.cluster.local+version-v1"',
        "   Error [IST0101] Referenced host+subset in destinationrule not found: "
        '"catalog.shop.svc.cluster.local+version-v2"']
    assert "DestinationRule:" not in text
    assert report["services"][0]["destinationRule"] is None


def test_with_the_destination_rule_the_pod_matches_its_subset_only():
    _, text = describe(BASE + SPLIT + DR, "catalog-v1", namespace="shop")
    assert section(text, 'DestinationRule: catalog for "catalog"') == [
        'DestinationRule: catalog for "catalog"',
        "   Matching subsets: version-v1",
        "      (Non-matching subsets version-v2)",
        "   No Traffic Policy"]
    assert section(text, "VirtualService: catalog-v1-v2") == [
        "VirtualService: catalog-v1-v2",
        '   Route to host "catalog.shop.svc.cluster.local" subset "version-v1" with weight 20%',
        '   Route to host "catalog.shop.svc.cluster.local" subset "version-v2" with weight 80%',
        "      Route to non-matching subset version-v2 for (everything)"]
    assert "IST0101" not in text and "No destinations match" not in text


def test_a_pod_in_no_subset_and_a_subset_that_selects_no_pod():
    dr = DR.replace("{version: v2}", "{version: v3}")
    report, text = describe(BASE + SPLIT + dr, "catalog-v2", namespace="shop")
    lines = section(text, 'DestinationRule: catalog for "catalog"')
    assert lines[1:4] == [
        "   WARNING POD DOES NOT MATCH ANY SUBSETS.  (Non matching subsets version-v1,version-v2)",
        "   Matching subsets: ",
        "      (Non-matching subsets version-v1,version-v2)"]
    assert report["services"][0]["destinationRule"]["subsetsSelectingNoPod"] == ["version-v2"]
    assert ("   Error [IST0173] The Subset version-v2 defined in the DestinationRule does not "
            "select any pods. Which may lead to 503 UH (NoHealthyUpstream).") in lines
    vs = section(text, "VirtualService: catalog-v1-v2")
    assert ("      Route to non-matching subset version-v2 for (everything); subset version-v2 "
            "selects no pod of the service (503 UH)") in vs
    assert "   WARNING: No destinations match pod subsets (checked 1 HTTP routes)" in vs


def test_a_subset_the_destination_rule_does_not_define():
    vs = SPLIT.replace("subset: version-v2", "subset: version-v3")
    _, text = describe(BASE + vs + DR, "catalog-v1", namespace="shop")
    assert ("      Warning: Route to UNKNOWN subset version-v3; check DestinationRule catalog"
            in section(text, "VirtualService: catalog-v1-v2"))


def test_traffic_policy_tls_load_balancer_outlier_detection_and_port_settings():
    dr = DR + """\
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s}
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: DISABLE}
      connectionPool: {tcp: {maxConnections: 10}}
"""
    _, text = describe(BASE + dr, "catalog-v1", namespace="shop")
    assert section(text, 'DestinationRule: catalog for "catalog"')[3:] == [
        "   Traffic Policy TLS Mode: ISTIO_MUTUAL",
        "   Policies: load balancer/outlier detection",
        "      Load balancer: ROUND_ROBIN",
        "      Outlier detection: consecutive5xxErrors=5 interval=10s",
        "   Port Level Settings:",
        "    80:",
        "      TLS Mode: DISABLE",
        "      Policies: connection pool"]
    assert "No Traffic Policy" not in text


def test_the_destination_rule_of_the_pods_namespace_wins_over_the_root_namespaces():
    root = DR.replace("namespace: shop", "namespace: istio-system").replace(
        "name: catalog,", "name: mesh-default,").replace("host: catalog", "host: '*.local'")
    report, _ = describe(BASE + root, "catalog-v1", namespace="shop")
    assert report["services"][0]["destinationRule"]["name"] == "mesh-default"  # the wildcard
    report, _ = describe(BASE + root + DR, "catalog-v1", namespace="shop")
    assert report["services"][0]["destinationRule"]["name"] == "catalog"
    hidden = DR.replace("namespace: shop", "namespace: other") + "  exportTo: ['.']\n"
    report, _ = describe(BASE + hidden, "catalog-v1", namespace="shop")
    assert report["services"][0]["destinationRule"] is None  # not exported to shop


def test_route_details_matches_timeout_retries_fault_mirror_and_other_hosts():
    vs = """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  http:
  - match:
    - uri: {prefix: /api}
      headers: {end-user: {exact: jason}}
    route:
    - destination: {host: catalog, port: {number: 80}}
      weight: 90
    - destination: {host: legacy.other.svc.cluster.local}
      weight: 10
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: 5xx}
    fault: {delay: {fixedDelay: 1s, percentage: {value: 50}}}
    mirror: {host: catalog-shadow}
    mirrorPercentage: {value: 10}
  - route:
    - destination: {host: elsewhere}
"""
    _, text = describe(BASE + vs, "catalog-v1", namespace="shop")
    assert section(text, "VirtualService: catalog") == [
        "VirtualService: catalog",
        '   Route to host "catalog" port 80 with weight 90%',
        '   Route to host "legacy.other.svc.cluster.local" with weight 10%',
        "   Fault injection delay 1s 50%, Match: /api* when headers are end-user=jason",
        "   Timeout 2s",
        "   Retries 3 attempts, 500ms per try, on 5xx",
        '   Mirror to host "catalog-shadow" (10%)',
        "   1 additional destination(s) that will not reach this pod",
        '   Error [IST0101] Referenced host not found: "elsewhere"',
        '   Error [IST0101] Referenced host not found: "legacy.other.svc.cluster.local"',
        '   Error [IST0101] Referenced mirror host not found: "catalog-shadow"']


def test_gateway_only_virtual_services_are_not_under_the_service_and_mesh_ones_are():
    gw_only = SPLIT.replace("  hosts: [catalog]", "  hosts: [catalog.example.com]\n"
                                                  "  gateways: [web]")
    report, text = describe(BASE + gw_only + DR, "catalog-v1", namespace="shop")
    assert report["services"][0]["virtualServices"] == []
    assert "Service: catalog" in text
    both = gw_only.replace("gateways: [web]", "gateways: [web, mesh]")
    report, _ = describe(BASE + both + DR, "catalog-v1", namespace="shop")
    assert [v["name"] for v in report["services"][0]["virtualServices"]] == ["catalog-v1-v2"]


def test_tcp_routes_to_the_service():
    vs = """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: shop}
spec:
  hosts: [catalog]
  tcp:
  - match: [{port: 80}]
    route: [{destination: {host: catalog}}]
"""
    _, text = describe(BASE + vs, "catalog-v1", namespace="shop")
    assert section(text, "VirtualService: tcp") == [
        "VirtualService: tcp", '   Route to host "catalog"', "   Match: port 80"]


def test_describe_service_counts_every_pod_for_subsets():
    _, text = describe(BASE + SPLIT + DR, namespace="shop", service="catalog")
    assert section(text, 'DestinationRule: catalog for "catalog"')[1:] == [
        "   Matching subsets: version-v1,version-v2", "   No Traffic Policy"]
    assert "Route to non-matching subset" not in text
    assert "Pod:" not in text and "PeerAuthentication" not in text
