"""The own protobuf codec against the generated envoy classes (xds-protos): what we encode
parses there as meant, and what they serialize decodes here as meant."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from envoy.admin.v3 import config_dump_shared_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import any_pb2, struct_pb2, timestamp_pb2

from kubectl_mesh.syncz import ERROR, IGNORED, NOT_SENT, STALE, SYNCED, from_client_config
from kubectl_mesh.xds import messages, protowire

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


def test_discovery_request_parses_as_envoys():
    data = messages.discovery_request("istio.io/debug/syncz", "sidecar~1.2.3.4~x.ns~ns.svc",
                                      {"NAMESPACE": "istio-system", "GENERATOR": "event"},
                                      ("a", "b"), "nonce-1")
    req = discovery_pb2.DiscoveryRequest.FromString(data)
    assert req.type_url == "istio.io/debug/syncz"
    assert req.node.id == "sidecar~1.2.3.4~x.ns~ns.svc"
    assert dict(req.node.metadata) == {"NAMESPACE": "istio-system", "GENERATOR": "event"}
    assert list(req.resource_names) == ["a", "b"] and req.response_nonce == "nonce-1"


def _ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def _client_config() -> csds_pb2.ClientConfig:
    meta = struct_pb2.Struct()
    meta.update({"CLUSTER_ID": "Kubernetes", "NAMESPACE": "shop", "ISTIO_VERSION": "1.28.0"})
    G = csds_pb2.ClientConfig.GenericXdsConfig
    return csds_pb2.ClientConfig(
        node=base_pb2.Node(id="cart-1.shop", metadata=meta),
        generic_xds_configs=[
            G(type_url=CDS, config_status=csds_pb2.SYNCED, last_updated=_ts(1767225600, 5000)),
            G(type_url=EDS, config_status=csds_pb2.NOT_SENT,
              last_updated=_ts(-62135596800)),  # Go's zero time: never sent
            G(type_url=LDS, config_status=csds_pb2.STALE, last_updated=_ts(1767225601)),
            G(type_url=RDS, config_status=csds_pb2.ERROR, last_updated=_ts(1767225602),
              error_state=config_dump_shared_pb2.UpdateFailureState(
                  details="route x: duplicate domain")),
            G(type_url="type.googleapis.com/istio.example.v1.New",
              config_status=csds_pb2.UNKNOWN),
        ])


def test_client_config_decodes_what_envoys_classes_serialize():
    cc = messages.client_config(_client_config().SerializeToString())
    assert cc.node_id == "cart-1.shop"
    assert cc.metadata == {"CLUSTER_ID": "Kubernetes", "NAMESPACE": "shop",
                           "ISTIO_VERSION": "1.28.0"}
    by_url = {c.type_url: c for c in cc.configs}
    assert by_url[CDS].config_status == "SYNCED"
    assert by_url[CDS].last_updated == datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=timezone.utc)
    assert by_url[EDS].config_status == "NOT_SENT" and by_url[EDS].last_updated is None
    assert by_url[RDS].error == "route x: duplicate domain"


def test_client_config_becomes_istios_words():
    proxy = from_client_config(messages.client_config(_client_config().SerializeToString()),
                               "istiod-1")
    words = {t.type: t.status for t in proxy.types}
    assert words["CDS"] == SYNCED and words["EDS"] == NOT_SENT and words["LDS"] == STALE
    assert words["RDS"] == ERROR and words["ECDS"] == IGNORED  # not watched
    assert words["type.googleapis.com/istio.example.v1.New"] == IGNORED  # UNKNOWN
    assert proxy.type("RDS").last_error == "route x: duplicate domain"
    assert proxy.name == "cart-1.shop" and proxy.cluster_id == "Kubernetes"
    assert proxy.istio_version == "1.28.0" and proxy.istiod == "istiod-1"
    assert not proxy.synced


def test_discovery_response_with_any_resources():
    packed = any_pb2.Any()
    packed.Pack(_client_config())
    resp = discovery_pb2.DiscoveryResponse(
        version_info="v1", type_url="istio.io/debug/syncz", nonce="n", resources=[packed],
        control_plane=base_pb2.ControlPlane(identifier='{"Component":"istiod","ID":"istiod-x"}'))
    out = messages.discovery_response(resp.SerializeToString())
    assert out.type_url == "istio.io/debug/syncz" and out.nonce == "n"
    assert out.control_plane == '{"Component":"istiod","ID":"istiod-x"}'
    assert [r.type_url for r in out.resources] == [messages.CLIENT_CONFIG_TYPE]
    assert messages.client_config(out.resources[0].value).node_id == "cart-1.shop"


def test_unknown_fields_are_skipped():
    extra = protowire.field_varint(99, 7) + protowire.field_bytes(98, b"xyz")
    data = _client_config().SerializeToString() + extra
    assert messages.client_config(data).node_id == "cart-1.shop"


@pytest.mark.parametrize("data", [b"\x0a\x05ab", b"\x08", b"\x0b", b"\x00\x01"],
                         ids=["short-string", "short-varint", "group", "field-0"])
def test_malformed_bytes_raise_decode_error(data):
    with pytest.raises(protowire.DecodeError):
        messages.client_config(data)


def test_negative_varint_round_trip():
    value, _ = protowire.read_varint(protowire.varint(-62135596800), 0)
    assert protowire.signed64(value) == -62135596800
