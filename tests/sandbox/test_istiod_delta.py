"""The sandbox istiod's Delta xDS stream (`DeltaAggregatedResources`) over a real in-process
gRPC stream, against real istiod's pilot/pkg/xds/delta.go: named resources without versions,
`system_version_info` and nonces from the push version, removed resources, ACK/NACK/stale
nonces recorded for syncz, EDS subscribed by name, `forceEDSPush`, and the xds faults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.status.v3 import csds_pb2
from google.rpc import status_pb2

from sandbox.istiod import faults, statusgen
from sandbox.istiod.debug import syncz
from sandbox.istiod.mesh import Mesh
from tests.sandbox.test_istiod_ads import Stream, serving

SCENARIOS = Path(__file__).resolve().parents[2] / "sandbox" / "scenarios"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
NODE = "router~127.0.50.10~gw-1.istio-system~istio-system.svc.cluster.local"
V1 = "outbound|80|version-v1|catalog.istioinaction.svc.cluster.local"
V2 = "outbound|80|version-v2|catalog.istioinaction.svc.cluster.local"
PLAIN = "outbound|80||catalog.istioinaction.svc.cluster.local"


def objects(*names, fault: str = ""):
    docs = [d for n in names for d in yaml.safe_load_all((SCENARIOS / n).read_text()) if d]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "gw-1", "namespace": "istio-system",
                        "labels": {"istio": "ingressgateway"},
                        "annotations": {faults.FAULT_ANNOTATION: fault} if fault else {}},
           "status": {"podIP": "127.0.50.10"}}
    return docs + [pod]


class DeltaStream(Stream):
    """A client delta ADS stream: send DeltaDiscoveryRequests, receive the responses."""
    METHOD = "DeltaAggregatedResources"
    REQUEST = discovery_pb2.DeltaDiscoveryRequest


@pytest.fixture
def server():
    with serving(objects("default.yaml"), "127.0.50.10", DeltaStream) as served:
        yield served


def state(ads):
    [entry] = syncz(ads)
    return entry


def names(response):
    return {r.name for r in response.resources}


def test_ack_nack_stale_removed_and_recovery(server):
    ads, stream = server
    stream.send(node={"id": NODE})
    first = stream.receive()
    assert isinstance(first, discovery_pb2.DeltaDiscoveryResponse)
    # each resource named, without a version (istiod's generators leave it empty)
    assert PLAIN in names(first) and V1 not in names(first)
    assert all(r.version == "" for r in first.resources)
    assert first.nonce.startswith(first.system_version_info) and not first.removed_resources
    assert state(ads)["cluster_sent"] == first.nonce and "cluster_acked" not in state(ads)

    stream.send(response_nonce=first.nonce)
    assert stream.nothing_within(0.2)  # a plain ACK needs no answer
    assert state(ads)["cluster_acked"] == first.nonce

    ads.set_mesh(Mesh.from_objects(objects("default.yaml", "catalog-destinationrule.yaml")))
    second = stream.receive()
    assert {V1, V2} <= names(second) and not second.removed_resources
    assert second.system_version_info != first.system_version_info
    # a NACK records its message whatever its nonce (checked before the nonce in
    # shouldRespondDelta); "acked" stays at the last good nonce
    stream.send(response_nonce=first.nonce,
                error_detail=status_pb2.Status(code=13, message="Envoy says no"))
    assert stream.nothing_within(0.2)
    entry = state(ads)
    assert entry["resources"][CDS]["lastError"] == "Envoy says no"
    assert entry["cluster_acked"] == first.nonce and entry["cluster_sent"] == second.nonce

    # an ACK with an old nonce is stale: ignored
    stream.send(response_nonce=first.nonce)
    assert stream.nothing_within(0.2)
    assert state(ads)["resources"][CDS]["lastError"] == "Envoy says no"

    # the subsets go: removed by name
    ads.set_mesh(Mesh.from_objects(objects("default.yaml")))
    third = stream.receive()
    assert sorted(third.removed_resources) == sorted([V1, V2]) and PLAIN in names(third)
    stream.send(response_nonce=third.nonce)
    assert stream.nothing_within(0.2)
    entry = state(ads)
    assert entry["cluster_acked"] == third.nonce and "lastError" not in entry["resources"][CDS]


def test_eds_is_subscribed_by_name_and_follows_every_cds_request(server):
    ads, stream = server
    stream.send(node={"id": NODE})
    clusters = stream.receive()
    stream.send(response_nonce=clusters.nonce)
    stream.send(type_url=EDS, resource_names_subscribe=[PLAIN])
    endpoints = stream.receive()
    assert endpoints.type_url == EDS and names(endpoints) == {PLAIN}

    # ACK and a new name together: answered with the new name only (Delta.Subscribed); a
    # name istiod does not know gets an empty ClusterLoadAssignment, not a removal
    stream.send(type_url=EDS, response_nonce=endpoints.nonce,
                resource_names_subscribe=["outbound|9080||nowhere.default.svc.cluster.local"])
    added = stream.receive()
    assert names(added) == {"outbound|9080||nowhere.default.svc.cluster.local"}
    assert not added.removed_resources
    assert state(ads)["endpoint_acked"] == endpoints.nonce

    # only an unsubscription: no answer (removal is the parent's business)
    stream.send(type_url=EDS, response_nonce=added.nonce,
                resource_names_unsubscribe=["outbound|9080||nowhere.default.svc.cluster.local"])
    assert stream.nothing_within(0.2)
    assert ads.connection_for("gw-1.istio-system").watched[EDS].names == [PLAIN]

    # a CDS request that changes the subscription brings EDS along (forceEDSPush)
    stream.send(resource_names_subscribe=["*"], response_nonce=clusters.nonce)
    got = [stream.receive(), stream.receive()]
    assert [r.type_url for r in got] == [CDS, EDS] and names(got[1]) == {PLAIN}


def test_lose_pushes_fault_on_a_delta_stream(server):
    ads, stream = server
    stream.send(node={"id": NODE})
    first = stream.receive()
    stream.send(response_nonce=first.nonce)
    assert stream.nothing_within(0.2)
    ads.set_mesh(Mesh.from_objects(objects("default.yaml", "catalog-destinationrule.yaml",
                                           fault=faults.LOSE_PUSHES)))
    assert stream.nothing_within(0.3)  # lost on the way...
    entry = state(ads)  # ...but istiod believes it was sent and ACKed
    assert entry["cluster_sent"] != first.nonce and entry["cluster_acked"] == entry["cluster_sent"]


def test_syncz_debug_type_on_a_delta_stream(server):
    ads, stream = server
    ads.debug_access = statusgen.DebugAccess(auth=False)
    stream.send(node={"id": NODE, "metadata": {"PROXY_CONFIG": {}}})
    first = stream.receive()
    stream.send(response_nonce=first.nonce)
    stream.send(type_url=statusgen.SYNCZ_TYPE)
    answer = stream.receive()
    assert answer.type_url == statusgen.SYNCZ_TYPE and answer.control_plane.identifier
    [resource] = answer.resources
    assert resource.name == "gw-1.istio-system"
    config = csds_pb2.ClientConfig()
    resource.resource.Unpack(config)
    [cds] = config.generic_xds_configs
    assert cds.type_url == CDS and cds.config_status == csds_pb2.SYNCED
    assert stream.nothing_within(0.2)


@pytest.mark.parametrize("annotation, api_type", [
    (None, "DELTA_GRPC"),  # ISTIO_DELTA_XDS defaults to true
    ('{"proxyMetadata": {"ISTIO_DELTA_XDS": "false"}}', "GRPC"),
    ("proxyMetadata:\n  ISTIO_DELTA_XDS: false\n", "GRPC"),
    ("proxyMetadata:\n  ISTIO_DELTA_XDS: 'true'\n", "DELTA_GRPC"),
    ("proxyMetadata: [not, a, map]", "DELTA_GRPC"),
])
def test_bootstrap_speaks_delta_unless_the_pod_turns_it_off(annotation, api_type):
    from sandbox.istiod.bootstrap import render_bootstrap
    [pod] = [d for d in objects() if d["kind"] == "Pod"]
    if annotation is not None:
        pod["metadata"]["annotations"]["proxy.istio.io/config"] = annotation
    config = render_bootstrap(pod, "router", ("127.0.50.1", 15010))
    assert config["dynamic_resources"]["ads_config"]["api_type"] == api_type



def test_an_unparsable_proxy_config_stops_the_proxy_before_any_xds():
    """pilot-agent does not start with a `proxy.istio.io/config` it cannot read (the stats
    matcher reads it first), so no bootstrap is written at all."""
    from sandbox.istiod.bootstrap import render_bootstrap
    [pod] = [d for d in objects() if d["kind"] == "Pod"]
    pod["metadata"]["annotations"]["proxy.istio.io/config"] = "{unparsable"
    with pytest.raises(ValueError, match="proxy.istio.io/config"):
        render_bootstrap(pod, "router", ("127.0.50.1", 15010))