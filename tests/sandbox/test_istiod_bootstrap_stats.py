"""The sandbox bootstrap's stats matcher against Istio's rules: tools/packaging/common/
envoy_bootstrap.json `stats_matcher`, pkg/bootstrap/config.go `getStatsOptions`, and the proxy
config pilot-agent builds (pilot/cmd/pilot-agent/config/config.go `getMeshConfig`)."""

from __future__ import annotations

import re

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
# the xds-grpc cluster's typed_extension_protocol_options type, for ParseDict
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from google.protobuf import json_format

from sandbox.istiod.bootstrap import mesh_default_config, render_bootstrap, stats_matcher

IP = "127.0.9.7"
ISTIO_DEFAULT = {"prefix": ["reporter=", "cluster_manager", "listener_manager", "server",
                            "cluster.xds-grpc", "wasm", "component", "istio"],
                 "suffix": ["rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied"],
                 "regex": [r"vhost\..*\.route\..*"]}


def pod(**annotations: str) -> dict:
    return {"metadata": {"name": "catalog-1", "namespace": "istioinaction",
                         "annotations": annotations},
            "status": {"podIP": IP}}


def by_kind(matcher: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"prefix": [], "suffix": [], "regex": []}
    for p in matcher["inclusion_list"]["patterns"]:
        if "safe_regex" in p:
            out["regex"].append(p["safe_regex"]["regex"])
        else:
            [(kind, value)] = p.items()
            out[kind].append(value)
    return out


def kept(matcher: dict, name: str) -> bool:
    """Whether Envoy keeps the stat `name` (any inclusion pattern matches: StatsMatcherImpl)."""
    for p in matcher["inclusion_list"]["patterns"]:
        if ("prefix" in p and name.startswith(p["prefix"])) or \
                ("suffix" in p and name.endswith(p["suffix"])) or \
                ("safe_regex" in p and re.fullmatch(p["safe_regex"]["regex"], name)):
            return True
    return False


def test_without_opt_in_only_istios_required_stats():
    matcher = stats_matcher(pod())
    assert by_kind(matcher) == ISTIO_DEFAULT
    for name in ("cluster_manager.cds.version_text", "listener_manager.lds.update_rejected",
                 "cluster.xds-grpc.upstream_rq_total", "server.live",
                 "vhost.catalog.route.r1.upstream_rq_total"):
        assert kept(matcher, name), name
    for name in ("cluster.outbound|80||catalog.istioinaction.svc.cluster.local.upstream_rq_total",
                 "http.outbound_0.0.0.0_80.rds.80.version_text", "control_plane.connected_state",
                 "cluster.outbound|80||catalog.istioinaction.svc.cluster.local.update_rejected"):
        assert not kept(matcher, name), name


def test_the_bootstrap_carries_it_and_envoy_accepts_it():
    config = render_bootstrap(pod(), "sidecar", ("127.0.9.1", 15010))
    assert config["stats_config"]["stats_matcher"] == stats_matcher(pod())
    json_format.ParseDict(config, bootstrap_pb2.Bootstrap())


def test_the_proxy_config_annotation_adds_before_the_required_ones():
    annotation = ("proxyStatsMatcher:\n  inclusionPrefixes: [control_plane, 'http.{pod_ip}_']\n"
                  "  inclusionSuffixes: [update_rejected, version_text]\n"
                  "  inclusionRegexps: ['cluster\\.outbound.*']\n")
    got = by_kind(stats_matcher(pod(**{"proxy.istio.io/config": annotation})))
    # getStatsOptions: the proxy config's list, then the required ones; {pod_ip} substituted
    assert got["prefix"] == ["reporter=", "control_plane", f"http.{IP}_",
                             *ISTIO_DEFAULT["prefix"][1:]]
    assert got["suffix"] == ["update_rejected", "version_text", *ISTIO_DEFAULT["suffix"]]
    assert got["regex"] == [r"cluster\.outbound.*", *ISTIO_DEFAULT["regex"]]


def test_a_sidecar_annotation_replaces_that_kind_of_the_proxy_config():
    """`parseOption`: an annotation wins over the proxy config for its own kind, not merged."""
    mesh = {"proxyStatsMatcher": {"inclusionPrefixes": ["control_plane"],
                                  "inclusionSuffixes": ["version_text"]}}
    got = by_kind(stats_matcher(pod(**{
        "sidecar.istio.io/statsInclusionPrefixes": "cluster.outbound,http.{pod_ip}_"}), mesh))
    assert got["prefix"][:3] == ["reporter=", "cluster.outbound", f"http.{IP}_"]
    assert "control_plane" not in got["prefix"]
    assert got["suffix"][0] == "version_text"  # the mesh's suffixes stay: no suffix annotation


def test_the_pod_annotation_replaces_the_meshs_matcher_whole():
    """MergeProxyConfig (jsonpb): a field the overlay names is set anew, so the annotation's
    proxyStatsMatcher replaces the mesh's, and a mesh matcher stays when it names none."""
    mesh = mesh_default_config({"data": {"mesh": (
        "rootNamespace: istio-system\ndefaultConfig:\n  proxyStatsMatcher:\n"
        "    inclusionPrefixes: [control_plane]\n    inclusionRegexps: ['x.*']\n")}})
    assert mesh == {"proxyStatsMatcher": {"inclusionPrefixes": ["control_plane"],
                                          "inclusionRegexps": ["x.*"]}}
    from_mesh = by_kind(stats_matcher(pod(), mesh))
    assert from_mesh["prefix"][1] == "control_plane" and from_mesh["regex"][0] == "x.*"
    other = by_kind(stats_matcher(pod(**{"proxy.istio.io/config": "concurrency: 2"}), mesh))
    assert other == from_mesh
    replaced = by_kind(stats_matcher(pod(**{
        "proxy.istio.io/config": "proxyStatsMatcher: {inclusionSuffixes: [version_text]}"}), mesh))
    assert replaced == {**ISTIO_DEFAULT, "suffix": ["version_text", *ISTIO_DEFAULT["suffix"]]}


def test_no_or_unreadable_mesh_config_adds_nothing():
    for configmap in (None, {"data": {}}, {"data": {"mesh": ": ["}},
                      {"data": {"mesh": "defaultConfig: 3"}}):
        assert mesh_default_config(configmap) == {}, configmap


@pytest.mark.parametrize("text", ["proxyStatsMatcher: [", "just a string"])
def test_an_unreadable_proxy_config_annotation_is_an_error_naming_the_pod(text):
    with pytest.raises(ValueError, match="catalog-1.istioinaction: annotation "
                                         "proxy.istio.io/config"):
        stats_matcher(pod(**{"proxy.istio.io/config": text}))
