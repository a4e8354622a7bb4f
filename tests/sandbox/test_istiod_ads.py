"""The ADS sync state machine over a real in-process gRPC stream, and syncz's shape."""

from __future__ import annotations

import contextlib
import queue
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

from sandbox.istiod import ads as ads_module
from sandbox.istiod.debug import DumpCache, config_dump, syncz
from sandbox.istiod.mesh import Mesh

SCENARIOS = Path(__file__).resolve().parents[2] / "sandbox" / "scenarios"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
NODE = "router~127.0.50.9~gw-1.istio-system~istio-system.svc.cluster.local"


def objects(*names):
    return [d for n in names for d in yaml.safe_load_all((SCENARIOS / n).read_text()) if d]


class Stream:
    """A client ADS stream: send DiscoveryRequests, receive DiscoveryResponses (a subclass
    names another stub method and request type: the delta stream)."""
    METHOD = "StreamAggregatedResources"
    REQUEST = discovery_pb2.DiscoveryRequest

    def __init__(self, channel):
        self._requests: queue.Queue = queue.Queue()
        self._responses: queue.Queue = queue.Queue()
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self._call = getattr(stub, self.METHOD)(iter(self._requests.get, None))
        self._pool = futures.ThreadPoolExecutor(1)
        self._pool.submit(self._drain)

    def _drain(self):
        try:
            for response in self._call:
                self._responses.put(response)
        except grpc.RpcError:
            pass

    def send(self, type_url=CDS, **kwargs):
        self._requests.put(self.REQUEST(type_url=type_url, **kwargs))

    def receive(self, timeout=2.0):
        return self._responses.get(timeout=timeout)

    def nothing_within(self, seconds) -> bool:
        try:
            self._responses.get(timeout=seconds)
            return False
        except queue.Empty:
            return True

    def close(self):
        self._requests.put(None)
        self._call.cancel()
        self._pool.shutdown(wait=True)


@contextlib.contextmanager
def serving(docs: list[dict], address: str, stream_class=Stream):
    """(the AdsServer of `docs`, a `stream_class` stream to it) on an in-process gRPC
    server at `address`; all closed on exit."""
    ads = ads_module.AdsServer(Mesh.from_objects(docs), identifier="test")
    grpc_server = grpc.server(futures.ThreadPoolExecutor(8))
    ads_module.serve(grpc_server, ads)
    port = grpc_server.add_insecure_port(f"{address}:0")
    grpc_server.start()
    channel = grpc.insecure_channel(f"{address}:{port}")
    stream = stream_class(channel)
    try:
        yield ads, stream
    finally:
        stream.close()
        channel.close()
        grpc_server.stop(0).wait()


@pytest.fixture
def server():
    with serving(objects("default.yaml"), "127.0.50.9") as served:
        yield served


def state(ads):
    [entry] = syncz(ads)
    return entry


def test_ack_nack_stale_and_recovery(server):
    ads, stream = server
    stream.send(node={"id": NODE})
    first = stream.receive()
    assert first.resources and first.nonce and first.version_info
    # istiod names itself only on debug syncz answers (pilot/pkg/xds/xdsgen.go ControlPlane)
    assert not first.HasField("control_plane")
    entry = state(ads)
    assert entry["proxy"] == "gw-1.istio-system" and entry["proxy_type"] == "router"
    assert entry["cluster_sent"] == first.nonce and "cluster_acked" not in entry  # STALE

    stream.send(version_info=first.version_info, response_nonce=first.nonce)
    assert stream.nothing_within(0.2)  # a plain ACK needs no answer
    assert state(ads)["cluster_acked"] == first.nonce

    ads.set_mesh(Mesh.from_objects(objects("default.yaml", "catalog-destinationrule.yaml")))
    second = stream.receive()
    assert second.version_info != first.version_info and len(second.resources) > len(first.resources)
    stream.send(version_info=first.version_info, response_nonce=second.nonce,
                error_detail=status_pb2.Status(code=13, message="Envoy says no"))
    assert stream.nothing_within(0.2)
    entry = state(ads)
    assert entry["resources"][CDS]["lastError"] == "Envoy says no"
    assert entry["cluster_acked"] == first.nonce and entry["cluster_sent"] == second.nonce

    # A request carrying an old nonce is stale: ignored, no state change.
    stream.send(version_info=first.version_info, response_nonce=first.nonce)
    assert stream.nothing_within(0.2)
    assert state(ads)["resources"][CDS]["lastError"] == "Envoy says no"

    # Same content again: no push, though the global push version moves on.
    ads.set_mesh(Mesh.from_objects(objects("default.yaml", "catalog-destinationrule.yaml")))
    assert stream.nothing_within(0.3)

    ads.set_mesh(Mesh.from_objects(objects("default.yaml")))
    third = stream.receive()
    # istiod's push versions: `<time>/<counter>`, one per config change, pushed or not
    assert [v.rpartition("/")[2] for v in (first.version_info, second.version_info,
                                           third.version_info)] == ["1", "2", "4"]
    assert third.nonce.startswith(third.version_info) and len(third.nonce) == len(
        third.version_info) + 36  # nonce(PushVersion): the version and a UUID
    stream.send(version_info=third.version_info, response_nonce=third.nonce)
    stream.nothing_within(0.2)
    entry = state(ads)
    assert entry["cluster_acked"] == third.nonce and "lastError" not in entry["resources"][CDS]


def test_config_dump_is_camel_case_under_the_global_push_version(server):
    """Like istiod's connectionConfigDump written by protomarshal: lowerCamelCase keys, and
    every section stamped with the proxy's LastPushContext version, which moves on with
    pushes that sent this proxy nothing."""
    ads, stream = server
    stream.send(node={"id": NODE})
    first = stream.receive()
    stream.send(version_info=first.version_info, response_nonce=first.nonce)
    assert stream.nothing_within(0.2)
    conn = ads.connection_for("gw-1.istio-system")

    def dump_sections():
        dump = config_dump(conn)
        return {c["@type"].rsplit(".", 1)[-1]: c for c in dump["configs"]}

    sections = dump_sections()
    assert list(sections) == ["BootstrapConfigDump", "ClustersConfigDump",
                              "ListenersConfigDump", "ScopedRoutesConfigDump",
                              "RoutesConfigDump", "SecretsConfigDump", "EcdsConfigDump"]
    clusters = sections["ClustersConfigDump"]
    assert clusters["versionInfo"] == first.version_info
    assert "BlackHoleCluster" in {c["cluster"]["name"] for c in clusters["dynamicActiveClusters"]}
    assert all(set(c) == {"cluster"} for c in clusters["dynamicActiveClusters"])
    assert any("connectTimeout" in c["cluster"] for c in clusters["dynamicActiveClusters"])

    ads.set_mesh(Mesh.from_objects(objects("default.yaml")))  # a push with nothing new
    assert stream.nothing_within(0.3)
    moved = dump_sections()["ClustersConfigDump"]["versionInfo"]
    assert moved == ads.push_version != first.version_info
    assert state(ads)["cluster_sent"].startswith(first.version_info)  # what it really got


def test_cached_config_dump_follows_mesh_changes_and_pushes(server):
    ads, stream = server
    stream.send(node={"id": NODE})
    first = stream.receive()
    conn = ads.connection_for("gw-1.istio-system")
    dumps = DumpCache()
    before = dumps.body(conn, False)
    assert dumps.body(conn, False) is before  # served from the cache
    assert dumps.body(conn, True) is not before  # include_eds is another body
    assert b"version-v1" not in before and first.version_info.encode() in before
    assert dumps.body(conn, True).count(b"EndpointsConfigDump") == 1

    # The dump follows the push context the proxy's stream last processed (istiod
    # generates it from proxy.LastPushContext): content and version move together.
    ads.set_mesh(Mesh.from_objects(objects("default.yaml", "catalog-destinationrule.yaml")))
    second = stream.receive()
    after_push = dumps.body(conn, False)
    assert b"version-v1" in after_push and second.version_info.encode() in after_push
    assert first.version_info.encode() not in after_push


def test_bad_node_id_closes_the_stream_and_registers_nothing(server):
    ads, stream = server
    stream.send(node={"id": "not-an-istio-node"})
    assert stream.nothing_within(0.3)
    assert syncz(ads) == []
