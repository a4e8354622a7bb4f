"""`routes --check`: each finding kind, and the look-alike cases where it must NOT appear."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubectl_mesh.configdump import read_dump
from kubectl_mesh.errors import BadInputError
from kubectl_mesh.trace import check_config, covers, findings_table
from kubectl_mesh.trace.check import DANGLING_CLUSTER, NO_HEALTHY_ENDPOINTS, SHADOWED_ROUTE

from .builders import (
    PLAIN, V1, V2, catalog_vhost, cluster, dump, endpoints, gateway, route, vhost,
)

DUMPS = Path("/work/shared/istio-dumps")


def kinds(findings):
    return [(f.kind, f.severity) for f in findings]


def test_dangling_weighted_clusters_reported_with_virtual_service():
    findings = check_config(gateway())
    assert kinds(findings) == [(DANGLING_CLUSTER, "error")] * 2
    f = findings[0]
    assert f.where == "http.8080 / catalog.istioinaction.io:80 / route #0"
    assert V1 in f.message and "IST0101" in f.fix
    assert f.istio_object == "VirtualService catalog-v1-v2.istioinaction"


def test_existing_clusters_are_not_dangling():
    assert check_config(gateway(clusters=[cluster(V1), cluster(V2)])) == []


def test_no_healthy_endpoints_only_for_eds_and_only_with_endpoint_data():
    d = gateway(clusters=[cluster(V1), cluster(V2), cluster(PLAIN, type_="STRICT_DNS", dr=None),
                          cluster("unused", dr=None)])
    eps = endpoints({V1: [("127.0.1.1", "HEALTHY", False)]})  # V2: no endpoint at all
    findings = check_config(d, eps)
    got = {(f.where, f.severity) for f in findings}
    # V2 is routed to: error; "unused" is not referenced: warning; V1 healthy and the
    # STRICT_DNS cluster (no EDS data) are not reported
    assert got == {(V2, "error"), ("unused", "warning")}
    assert all(f.kind == NO_HEALTHY_ENDPOINTS for f in findings)
    v2 = next(f for f in findings if f.where == V2)
    assert "503 UH" in v2.message and "subset version-v2 selects no ready pods" in v2.fix
    assert "IST0173" in v2.fix
    unhealthy = endpoints({V1: [("127.0.1.1", "HEALTHY", False)],
                           V2: [("127.0.1.2", "UNHEALTHY", False)]})
    v2 = next(f for f in check_config(d, unhealthy) if f.where == V2)
    assert "are unhealthy (unhealthy)" in v2.fix and v2.severity == "error"
    assert check_config(d) == []  # no endpoint data → no health findings


def test_panic_threshold_downgrades_unhealthy_to_warning():
    d = gateway(clusters=[cluster(V1, panic=None), cluster(V2)])
    eps = endpoints({V1: [("127.0.1.1", "UNHEALTHY", False)], V2: [("127.0.1.2", "HEALTHY", False)]})
    [f] = check_config(d, eps)
    assert (f.where, f.severity) == (V1, "warning") and "panic" in f.message


def test_shadowed_route_reported():
    routes = [route({"prefix": "/"}, cluster=V1), route({"prefix": "/api"}, cluster=V2)]
    d = gateway(vhosts=[catalog_vhost(routes)], clusters=[cluster(V1), cluster(V2)])
    [f] = check_config(d)
    assert (f.kind, f.severity) == (SHADOWED_ROUTE, "warning")
    assert f.message.startswith("route #1 (prefix /api) is shadowed by route #0 (prefix /)")
    assert f.where.endswith("/ route #1")


def test_specific_first_is_not_shadowing_and_vhosts_do_not_shadow():
    routes = [route({"prefix": "/api"}, cluster=V2), route({"prefix": "/"}, cluster=V1)]
    vhosts = [catalog_vhost(routes), vhost("all", ["*"], [route({"prefix": "/"}, cluster=V1)]),
              vhost("wild", ["*.istioinaction.io"], [route({"prefix": "/"}, cluster=V1)])]
    assert check_config(gateway(vhosts=vhosts, clusters=[cluster(V1), cluster(V2)])) == []


PREFIX_ALL = {"prefix": "/"}
HDR = {"name": "x-user", "string_match": {"exact": "a"}}


@pytest.mark.parametrize("earlier,later,shadowed", [
    (PREFIX_ALL, {"path": "/x"}, True),
    (PREFIX_ALL, {"safe_regex": {"regex": "/v.*"}}, True),
    ({"prefix": "/api"}, {"prefix": "/api/v1"}, True),
    ({"prefix": "/api"}, {"path": "/api"}, True),
    ({"prefix": "/api/v1"}, {"prefix": "/api"}, False),
    ({"path": "/a"}, {"path": "/a"}, True),
    ({"path": "/a"}, {"prefix": "/a"}, False),
    ({"path_separated_prefix": "/get"}, {"path": "/get/x"}, True),
    ({"path_separated_prefix": "/get"}, {"path": "/getter"}, False),
    ({"safe_regex": {"regex": "/v[0-9]+"}}, {"path": "/v2"}, True),
    ({"safe_regex": {"regex": "/v[0-9]+"}}, {"prefix": "/v2"}, False),
    # headers: an earlier route with a condition the later one lacks does not shadow it
    ({"prefix": "/", "headers": [HDR]}, PREFIX_ALL, False),
    (PREFIX_ALL, {"prefix": "/", "headers": [HDR]}, True),
    ({"prefix": "/", "headers": [HDR]}, {"prefix": "/a", "headers": [HDR]}, True),
    ({"prefix": "/", "runtime_fraction": {}}, {"path": "/a"}, False),
    # case: a case-insensitive later route matches variants a sensitive earlier one misses
    ({"prefix": "/api"}, {"prefix": "/api/v1", "case_sensitive": False}, False),
    ({"prefix": "/API", "case_sensitive": False}, {"prefix": "/api/v1"}, True),
], ids=lambda x: str(x))
def test_covers(earlier, later, shadowed):
    assert covers(earlier, later) is shadowed


def test_findings_table_columns():
    t = findings_table(check_config(gateway()), wide=True)
    assert t.headers == ("SEVERITY", "KIND", "WHERE", "MESSAGE", "FIX", "ISTIO OBJECT")
    assert len(t.rows) == 2 and t.data[0]["kind"] == DANGLING_CLUSTER


def test_check_needs_clusters_section():
    with pytest.raises(BadInputError):
        check_config(dump(route_configs=[{"name": "x", "virtual_hosts": []}]))


def test_real_dumps():
    d = read_dump(str(DUMPS / "ingressgw_http_8080_rds_cds.json"))
    findings = check_config(d)
    # all five bookinfo routes send to outbound|9080||productpage, CDS has only the v1 subset
    assert kinds(findings) == [(DANGLING_CLUSTER, "error")] * 5
    assert {f.istio_object for f in findings} == {"VirtualService bookinfo.default"}
    sidecar = read_dump(str(DUMPS / "legacy_sidecar_productpage_1.3.0-rc.2_full.json"))
    eps = read_dump(str(DUMPS / "legacy_admin_clusters_format_json.json")).endpoints
    health = [f for f in check_config(sidecar, eps) if f.kind == NO_HEALTHY_ENDPOINTS]
    assert health and all(f.where != "outbound|9080||reviews.default.svc.cluster.local"
                          for f in health)  # reviews has healthy hosts in that file
    assert check_config(sidecar) == []  # clean without endpoint data
