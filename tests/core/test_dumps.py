"""Every shared real-world dump parses, and every table it has data for renders real content."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from kubectl_mesh import output
from kubectl_mesh.configdump import (
    ClusterName, cluster_table, endpoint_table, listener_table, read_dump, route_table,
    secret_table,
)
from kubectl_mesh.errors import BadInputError

DUMPS = Path("/work/shared/istio-dumps")
FILES = sorted(p for p in DUMPS.iterdir() if p.suffix in (".json", ".yaml"))
ZTUNNEL = {"ztunnel_config_dump.json", "ztunnel_connections_dump_expected.json"}
BUILDERS = {
    "clusters": lambda d: cluster_table(d.clusters),
    "listeners": lambda d: listener_table(d.listeners),
    "routes": lambda d: route_table(d.routes),
    "endpoints": lambda d: endpoint_table(d.endpoints),
    "secrets": lambda d: secret_table(d.secrets),
}


def render(table, fmt="short") -> str:
    out = io.StringIO()
    output.write(out, fmt, headers=table.headers, rows=table.rows, data=table.data, gap=table.gap)
    return out.getvalue()


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_table_renders(path):
    if path.name in ZTUNNEL:
        with pytest.raises(BadInputError, match=r"is a ztunnel .*dump, not an Envoy config dump"):
            read_dump(str(path))
        return
    dump = read_dump(str(path))
    rendered = 0
    for section, build in BUILDERS.items():
        if not dump.has(section):
            continue
        table = build(dump)
        text = render(table)
        assert text.splitlines()[0].split()[0] == table.headers[0].split()[0]
        assert len(text.splitlines()) == len(table.rows) + 1
        assert all(len(r) == len(table.headers) for r in table.rows)
        for fmt in ("json", "yaml"):
            assert render(table, fmt).strip()
        rendered += 1
    # every file except the ECDS-only one has at least one table
    assert rendered or path.name == "sidecar_ecds_wasm_stats.json"


def load(name):
    return read_dump(str(DUMPS / name))


def test_ingress_gateway_route_http_8080():
    dump = load("ingressgw_http_8080_rds_cds.json")
    (config,) = [c for c in dump.routes if c.name == "http.8080"]
    (vhost,) = config.virtual_hosts
    assert vhost.name == "*:80" and vhost.domains == ("*",)
    first = vhost.routes[0]
    assert (first.match.kind, first.match.value) == ("path", "/productpage")
    assert first.action.cluster == "outbound|9080||productpage.default.svc.cluster.local"
    assert first.action.retry.num_retries == 2 and first.virtual_service == "bookinfo.default"
    rows = route_table(dump.routes).rows
    assert ("http.8080", "*:80", "*", "/static*", "bookinfo.default") in rows


def test_cluster_rows_parse_direction_port_subset():
    dump = load("legacy_ingressgateway_1.3.0_full.json")
    rows = cluster_table(dump.clusters).rows
    assert ("details.default.svc.cluster.local", "9080", "v2", "outbound", "EDS",
            "details.default") in rows
    assert ("BlackHoleCluster", "-", "-", "-", "STATIC", "") in rows


def test_camelcase_dump_matches_its_snake_content():
    dump = load("legacy_sidecar_details_envoy_side.json")  # camelCase clusters/listeners/routes
    names = {c.name for c in dump.clusters}
    assert "outbound|15004||istio-policy.istio-system.svc.cluster.local" in names
    assert [(l.port, l.type) for l in dump.listeners] == [(443, "TCP"), (8080, "HTTP")]
    assert all(c.raw.get("connect_timeout") for c in dump.clusters)  # snake keys after normalise


def test_secret_rows_show_serial_and_dates():
    dump = load("sidecar_secrets_istio_ca.json")
    rows = secret_table(dump.secrets, now=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)).rows
    assert rows[0] == ("configmap://some/thing", "", "WARMING", "false", "", "", "")
    assert rows[1] == ("default", "Cert Chain", "ACTIVE", "false",
                       "6fbee254c22900615cb1f74e3d2f1713", "2023-05-16T01:32:52Z",
                       "2023-05-15T01:30:52Z")
    assert rows[2][:5] == ("ROOTCA", "CA", "ACTIVE", "true", "0193a543fe2b0d9cd4847675394dfc54")


def test_secrets_without_cryptography(monkeypatch):
    from kubectl_mesh.configdump import secrets

    monkeypatch.setattr(secrets, "_x509", lambda: None)
    parsed = secrets.parse_secrets(load("sidecar_secrets_istio_ca.json").section("secrets"))
    rows = secrets.secret_table(parsed).rows
    assert [r[0] for r in rows] == ["configmap://some/thing", "default", "ROOTCA"]
    assert all(r[4] == "" and r[3] == "false" for r in rows)


def test_endpoints_from_clusters_json_health_and_outlier():
    eps = load("legacy_admin_clusters_format_json.json").endpoints
    by = {e.endpoint: e for e in eps}
    assert by["172.17.0.27:9080"].failed_outlier_check is True
    assert by["172.17.0.14:15014"].health_status == "UNHEALTHY"
    assert by["unix:///sock/mixer.socket"].port is None


def test_waypoint_bootstrap_and_eds():
    dump = load("waypoint-httpbin_1.21_full_config_dump.json")
    assert dump.bootstrap.node_id.startswith("waypoint~192.168.252.229~httpbin-istio-waypoint")
    assert dump.bootstrap.istio_version == "1.21.0-1226"
    assert {e.cluster for e in dump.endpoints} >= {"prometheus_stats"}


@pytest.mark.parametrize("name,expected", [
    ("outbound|80|version-v1|catalog.istioinaction.svc.cluster.local",
     ("outbound", 80, "version-v1", "catalog.istioinaction.svc.cluster.local", True)),
    ("inbound|3000||", ("inbound", 3000, "", "", True)),
    ("BlackHoleCluster", ("", None, "", "BlackHoleCluster", False)),
    ("outbound|bad|v1|x", ("outbound", None, "v1", "x", True)),
], ids=["outbound-subset", "inbound", "non-istio", "bad-port"])
def test_cluster_name_parse(name, expected):
    n = ClusterName.parse(name)
    assert (n.direction, n.port, n.subset, n.fqdn, n.is_istio) == expected


@pytest.mark.parametrize("domains,expected", [
    (("*",), "*"),
    (("a", "a.ns.svc.cluster.local", "a:80", "a.ns.svc.cluster.local:80"), "a, a.ns.svc.cluster.local"),
    (("a.ns", "a.ns.svc", "a.ns.svc.cluster.local", "10.0.0.1", "x"), "a.ns, 10.0.0.1 + 1 more..."),
    (("[fd00:10:96::7fc7]", "[fd00:10:96::7fc7]:8090"), "[fd00:10:96::7fc7]"),
], ids=["star", "ports-dropped", "unexpand-and-more", "ipv6"])
def test_describe_domains(domains, expected):
    from kubectl_mesh.configdump.routes import describe_domains

    assert describe_domains(domains) == expected
