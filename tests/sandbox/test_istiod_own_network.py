"""The sandbox istiod's config for a proxy in a pod network namespace of its own (the real
backend's netns pods, where istio-init's iptables capture traffic): real istiod's wildcard
15001/15006, the original_dst listener filter and inbound clusters that connect to the
original destination from 127.0.0.6. A proxy on the shared loopback keeps the pod-IP ones."""

from __future__ import annotations

import copy

import pytest
from google.protobuf import json_format

from sandbox.istiod import resources, translate
from sandbox.istiod.bootstrap import render_bootstrap
from sandbox.istiod.clusters import CLUSTER_TYPE
from sandbox.istiod.listeners import LISTENER_TYPE
from sandbox.istiod.proxy import Proxy

from tests.sandbox.test_istiod_translate import CATALOG_NODE, PODS, mesh_of

CATALOG_POD = PODS[1]
# the sandbox bootstrap's node metadata naming a pod network namespace of its own
OWN_NETWORK_METADATA = "SANDBOX_OWN_NETWORK"


def own_network_proxy(mesh, node: str = CATALOG_NODE) -> Proxy:
    return Proxy.from_node_id(node, {OWN_NETWORK_METADATA: "true"}).with_pod(mesh)


@pytest.mark.parametrize("admin, own", [(None, False), ("127.0.0.1", True)],
                         ids=["loopback", "netns"])
def test_the_bootstrap_tells_istiod_whether_the_pod_has_a_network_of_its_own(admin, own):
    boot = render_bootstrap(copy.deepcopy(CATALOG_POD), "sidecar", ("127.0.9.1", 15010),
                            admin_address=admin)
    from envoy.config.core.v3 import base_pb2
    node = json_format.ParseDict(boot["node"], base_pb2.Node())  # as istiod receives it
    metadata = json_format.MessageToDict(node.metadata)
    assert Proxy.from_node_id(node.id, metadata).own_network is own
    assert (OWN_NETWORK_METADATA in metadata) is own


def test_virtual_listeners_are_real_istiods_in_a_network_of_its_own():
    mesh = mesh_of()
    listeners = {l["name"]: l for l in translate.generate(mesh, own_network_proxy(mesh),
                                                          LISTENER_TYPE)}
    outbound, inbound = listeners["virtualOutbound"], listeners["virtualInbound"]
    assert outbound["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 15001}
    assert outbound["use_original_dst"] is True
    assert inbound["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 15006}
    assert [f["name"] for f in inbound["listener_filters"]] == [
        "envoy.filters.listener.original_dst"]
    chains = inbound["filter_chains"]
    assert chains[0]["filter_chain_match"] == {"destination_port": 3000}
    assert chains[0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0][
        "routes"][0]["route"]["cluster"] == "inbound|3000||"
    # any other port the capture sends here goes to the app as it was addressed
    assert chains[-1]["filters"][0]["typed_config"]["cluster"] == "InboundPassthroughCluster"
    assert "filter_chain_match" not in chains[-1]


def test_virtual_listeners_bind_the_pod_ip_on_the_shared_loopback():
    mesh = mesh_of()
    me = Proxy.from_node_id(CATALOG_NODE).with_pod(mesh)
    listeners = {l["name"]: l for l in translate.generate(mesh, me, LISTENER_TYPE)}
    for name, port in (("virtualOutbound", 15001), ("virtualInbound", 15006)):
        assert listeners[name]["address"]["socket_address"] == {"address": "127.0.9.3",
                                                                 "port_value": port}
    assert "listener_filters" not in listeners["virtualInbound"]
    assert [c["name"] for c in listeners["virtualInbound"]["filter_chains"]] == ["0.0.0.0_3000"]


def test_inbound_clusters_connect_to_the_original_destination_from_127_0_0_6():
    mesh = mesh_of()
    clusters = {c["name"]: c for c in translate.generate(mesh, own_network_proxy(mesh),
                                                         CLUSTER_TYPE)}
    inbound = clusters["inbound|3000||"]
    assert (inbound["type"], inbound["lb_policy"]) == ("ORIGINAL_DST", "CLUSTER_PROVIDED")
    assert "load_assignment" not in inbound
    assert inbound["cleanup_interval"] == "9223372035s"
    for name in ("inbound|3000||", "InboundPassthroughCluster"):
        assert clusters[name]["upstream_bind_config"]["source_address"] == {
            "address": "127.0.0.6", "port_value": 0}, name
    # outbound connections still leave from the pod's own address
    outbound = clusters["outbound|80||catalog.istioinaction.svc.cluster.local"]
    assert outbound["upstream_bind_config"]["source_address"]["address"] == "127.0.9.3"


def test_own_network_resources_are_valid_envoy_protos():
    mesh = mesh_of("catalog-destinationrule.yaml")
    me = own_network_proxy(mesh)
    for type_url in translate.PUSH_ORDER:
        for item in translate.generate(mesh, me, type_url):
            resources.to_any(type_url, item)  # raises on an unregistered typed_config
