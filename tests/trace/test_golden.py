"""Golden files for the rendered trace chain, `-o json` and the `--check` table:
tests/trace/golden/<case>.txt, compared with a unified diff. Regenerate only with
`pytest tests/trace --update-golden`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from kubectl_mesh import output
from kubectl_mesh.configdump import read_dump
from kubectl_mesh.trace import check_config, findings_table, parse_request, render_trace, trace_request

from .builders import V1, V2, catalog_vhost, cluster, endpoints, gateway, route

GOLDEN = Path(__file__).parent / "golden"
DUMPS = Path("/work/shared/istio-dumps")
URL = "http://catalog.istioinaction.io/items"
PORTS = {80: 8080}
HEALTH = {V1: [("127.0.1.1", "HEALTHY", False)],
          V2: [("127.0.1.2", "HEALTHY", False), ("127.0.1.3", "UNHEALTHY", True)]}


def _scenario(**kw):
    return trace_request(gateway(**kw.pop("dump", {})), parse_request(kw.pop("url", URL)),
                         port_map=PORTS, **kw)


def _real(name, url, **kw):
    return trace_request(read_dump(str(DUMPS / name)), parse_request(url), **kw)


def _legacy_endpoints():
    return read_dump(str(DUMPS / "legacy_admin_clusters_format_json.json")).endpoints


def _table(findings) -> str:
    t = findings_table(findings)
    out = io.StringIO()
    output.write(out, "short", headers=t.headers, rows=t.rows, data=t.data, gap=t.gap)
    return out.getvalue()


CASES = {
    "scenario_missing_subsets_nc": lambda: render_trace(_scenario()),
    "scenario_missing_subsets_nc_json": lambda: json.dumps(_scenario().to_dict(), indent=2,
                                                           ensure_ascii=False) + "\n",
    "scenario_routed_with_endpoints": lambda: render_trace(_scenario(
        dump={"clusters": [cluster(V1), cluster(V2)]}, endpoints=endpoints(HEALTH))),
    "scenario_partial_nc": lambda: render_trace(_scenario(dump={"clusters": [cluster(V2)]})),
    "scenario_no_healthy_upstream": lambda: render_trace(_scenario(
        dump={"clusters": [cluster(V1), cluster(V2)]}, endpoints=endpoints({}))),
    "scenario_no_virtual_host": lambda: render_trace(_scenario(url="http://catalog.istioinaction.i/")),
    "scenario_no_route": lambda: render_trace(_scenario(
        dump={"vhosts": [catalog_vhost([route({"path": "/api"}, cluster=V1)])]})),
    "scenario_no_listener": lambda: render_trace(_scenario(url="http://catalog.istioinaction.io:9999/")),
    "real_ingressgw_http_8080": lambda: render_trace(_real(
        "ingressgw_http_8080_rds_cds.json", "http://bookinfo.example.com/productpage",
        route_config="http.8080")),
    "real_legacy_gateway_tcp": lambda: render_trace(_real(
        "legacy_ingressgateway_1.3.0_full.json", "http://tcp.example.com:31400/")),
    "real_legacy_sidecar_reviews": lambda: render_trace(_real(
        "legacy_sidecar_productpage_1.3.0-rc.2_full.json", "http://reviews:9080/reviews/1",
        destination_ip="172.21.95.172", endpoints=_legacy_endpoints())),
    "check_scenario_table": lambda: _table(check_config(gateway(
        vhosts=[catalog_vhost([route({"prefix": "/"}, weighted=[(V1, 20), (V2, 80)]),
                               route({"prefix": "/api"}, cluster=V1)])]))),
    "check_ingressgw_http_8080_table": lambda: _table(check_config(
        read_dump(str(DUMPS / "ingressgw_http_8080_rds_cds.json")))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case, golden):
    golden(GOLDEN / f"{case}.txt", CASES[case]())
