"""The sandbox bootstrap's static resources and stats options against Istio's
tools/packaging/common/envoy_bootstrap.json (docs/real-istio.md findings 21-23, 25, 26):
the 15090 and 15021 listeners with their `backend` routes, the `prometheus_stats`, `agent`,
`sds-grpc` and `xds-grpc` clusters with `alt_stat_name`, `stats_tags` and deferred stats."""

from __future__ import annotations

import json
import re

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (  # noqa: F401
    http_connection_manager_pb2)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from google.protobuf import json_format

from sandbox.istiod.bootstrap import render_bootstrap
from sandbox.real.apply import istio_module_dir

IP = "127.0.9.7"
POD = {"metadata": {"name": "catalog-1", "namespace": "istioinaction"}, "status": {"podIP": IP}}
TEMPLATE = "tools/packaging/common/envoy_bootstrap.json"


def real_template() -> str:
    path = istio_module_dir() / TEMPLATE
    if not path.is_file():
        pytest.fail(f"{path} is missing: the Istio module is not in the Go module cache "
                    "(scripts/real_components.sh fetches it)")
    return path.read_text()


def real_stats_tags() -> list[dict]:
    """The template's `stats_tags`, with the `extraStatTags` range (empty by default) left out."""
    text = real_template()
    block = text[text.index('"stats_tags": ['):text.index('"stats_matcher"')]
    block = re.sub(r"\{\{-? range .*?\{\{-? end \}\}", "", block, flags=re.S)
    block = re.sub(r"\{\{-? if .*?\{\{-? end \}\}", "", block, flags=re.S)
    block = block[block.index("["):block.rindex("]") + 1]
    return json.loads(block)


def by_name(items: list[dict]) -> dict[str, dict]:
    return {i["name"]: i for i in items}


def hcm(listener: dict) -> dict:
    [chain] = listener["filter_chains"]
    [f] = chain["filters"]
    return f["typed_config"]


@pytest.mark.parametrize("admin, listen", [(None, IP), ("127.0.0.1", "0.0.0.0")])
def test_prometheus_and_health_listeners_as_real_istios(admin, listen):
    boot = render_bootstrap(POD, "sidecar", ("127.0.9.1", 15010), admin_address=admin)
    listeners = by_name(boot["static_resources"]["listeners"])
    assert sorted(listeners) == ["0.0.0.0_15021", "0.0.0.0_15090"]
    for name, port, prefix, cluster, stat_prefix in (
            ("0.0.0.0_15090", 15090, "/stats/prometheus", "prometheus_stats", "stats"),
            ("0.0.0.0_15021", 15021, "/healthz/ready", "agent", "agent")):
        # each pod's own network namespace: the wildcard; pods on the shared loopback: the pod IP
        assert listeners[name]["address"]["socket_address"]["address"] == listen
        assert listeners[name]["address"]["socket_address"]["port_value"] == port
        config = hcm(listeners[name])
        assert config["stat_prefix"] == stat_prefix
        [vhost] = config["route_config"]["virtual_hosts"]
        assert (vhost["name"], vhost["domains"]) == ("backend", ["*"])
        [route] = vhost["routes"]
        assert route["match"] == {"prefix": prefix}
        assert route["route"]["cluster"] == cluster
    # no pilot-agent: the health check asks Envoy's admin `/ready`
    [health] = hcm(listeners["0.0.0.0_15021"])["route_config"]["virtual_hosts"][0]["routes"]
    assert health["route"]["prefix_rewrite"] == "/ready"


@pytest.mark.parametrize("admin", [None, "127.0.0.1"])
def test_static_clusters_as_real_istios_with_the_tag_marker(admin):
    boot = render_bootstrap(POD, "sidecar", ("127.0.9.1", 15010), admin_address=admin)
    clusters = boot["static_resources"]["clusters"]
    assert [c["name"] for c in clusters] == ["prometheus_stats", "agent", "sds-grpc", "xds-grpc"]
    for c in clusters:
        assert c["alt_stat_name"] == c["name"] + ";"
        assert (c["type"], c["lb_policy"]) == ("STATIC", "ROUND_ROBIN")
    clusters = by_name(clusters)

    def address(name):
        return clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"][0][
            "endpoint"]["address"]
    # prometheus_stats and agent reach the admin where it listens
    for name in ("prometheus_stats", "agent"):
        socket = address(name)["socket_address"]
        assert (socket["address"], socket["port_value"]) == (admin or IP, 15000)
    assert address("sds-grpc") == {"pipe": {"path": "./var/run/secrets/workload-spiffe-uds/socket"}}
    xds = clusters["xds-grpc"]
    assert address("xds-grpc")["socket_address"] == {"address": "127.0.9.1", "port_value": 15010}
    assert xds["max_requests_per_connection"] == 1
    assert xds["upstream_connection_options"] == {"tcp_keepalive": {"keepalive_time": 300}}
    assert [t["max_requests"] for t in xds["circuit_breakers"]["thresholds"]] == [100000] * 2


def test_stats_tags_are_the_templates():
    stats = render_bootstrap(POD, "router", ("127.0.9.1", 15010))["stats_config"]
    assert stats["use_all_default_tags"] is False
    assert stats["stats_tags"] == real_stats_tags()


def test_the_cluster_tag_cuts_at_the_marker():
    """Envoy's tag extraction, by the cluster_name rule: the marker ends the tag value, so
    Prometheus says cluster_name="outbound|80||catalog..." (no `;`)."""
    [rule] = [t for t in real_stats_tags() if t["tag_name"] == "cluster_name"]
    name = "cluster.outbound|80||catalog.istioinaction.svc.cluster.local;.upstream_rq_total"
    match = re.search(rule["regex"], name)
    assert match.group(2) == "outbound|80||catalog.istioinaction.svc.cluster.local"


def test_deferred_stats_as_the_templates_default():
    boot = render_bootstrap(POD, "sidecar", ("127.0.9.1", 15010))
    assert boot["deferred_stat_options"] == {"enable_deferred_creation_stats": True}
    # rendered only with an outlier log path, LRS or self discovery: none by default
    assert "cluster_manager" not in boot
    template = real_template()
    assert '"deferred_stat_options": {\n    "enable_deferred_creation_stats": true' in template
    flag = template.index('"enable_deferred_cluster_creation"')
    assert template.count('"enable_deferred_cluster_creation"') == 1
    # inside the `{{ if or .outlier_log_path ... }}` block, which closes before the stats option
    assert template.index("{{ if or .outlier_log_path") < flag < template.rindex(
        "{{- end }}", 0, template.index('"deferred_stat_options"'))


def test_envoys_protos_accept_it():
    for admin in (None, "127.0.0.1"):
        boot = render_bootstrap(POD, "sidecar", ("127.0.9.1", 15010), admin_address=admin)
        json_format.ParseDict(boot, bootstrap_pb2.Bootstrap())
