"""Our gRPC client (h2 + own framing, TLS in memory) against the sandbox istiod's ADS server
on grpcio: the debug type over plaintext and TLS, istiod's authentication answers, and TLS
verification by name."""

from __future__ import annotations

import socket
from concurrent import futures

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import any_pb2

from kubectl_mesh.sync import istiodxds as xds
from sandbox.istiod import ads, security, statusgen

NAMESPACE = "istio-system"


class _Authenticator:
    """Tokens "good" (istio-system/default) and "other-ns" (shop/default)."""

    def authenticate(self, metadata):
        auth = dict(metadata).get("authorization", "")
        if auth == "Bearer good":
            return security.Identity(NAMESPACE, "default")
        if auth == "Bearer other-ns":
            return security.Identity("shop", "default")
        raise security.AuthenticationError("the token is not authenticated")


@pytest.fixture(scope="module")
def istiod(tmp_path_factory):
    ca_cert, ca_key = security.new_root()
    chain, key = security.issue_serving(ca_cert, ca_key,
                                        security.serving_names(NAMESPACE, "default"))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    ads.serve(server, ads.AdsServer(authenticator=_Authenticator(),
                                    debug_access=statusgen.DebugAccess(
                                        system_namespace=NAMESPACE)))
    plain = server.add_insecure_port("127.0.0.1:0")
    tls = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, chain)]))
    server.start()
    yield {"plain": plain, "tls": tls, "root": ca_cert.decode()}
    server.stop(0)


def _ask(port, creds, namespace=NAMESPACE):
    client = xds.IstiodXds("istiod-1", lambda: socket.create_connection(("127.0.0.1", port), 5),
                           creds, namespace, 5.0, "test")
    return client.proxies()


def _tls(istiod, token, name="istiod.istio-system.svc", root=None):
    return xds.XdsCredentials(xds.tls_context(root or istiod["root"]), name, token)


def test_tls_with_a_token_answers_syncz(istiod):
    assert _ask(istiod["tls"], _tls(istiod, "good")) == []  # no proxy connected


def test_plaintext_is_refused_while_debug_auth_is_on(istiod):
    with pytest.raises(xds.XdsUnavailable, match="Unauthenticated: authentication required"):
        _ask(istiod["plain"], xds.XdsCredentials(None, None, None))


def test_tls_without_a_valid_token_is_unauthenticated(istiod):
    with pytest.raises(xds.XdsUnavailable, match="Unauthenticated: authentication failure"):
        _ask(istiod["tls"], _tls(istiod, "forged"))


def test_a_token_of_another_namespace_than_the_node_claims_is_denied(istiod):
    with pytest.raises(xds.XdsUnavailable, match="PermissionDenied: authorization failed"):
        _ask(istiod["tls"], _tls(istiod, "other-ns"))


def test_the_certificate_must_carry_the_expected_name(istiod):
    with pytest.raises(xds.XdsUnavailable, match="TLS: Hostname mismatch"):
        _ask(istiod["tls"], _tls(istiod, "good", name="istiod-canary.istio-system.svc"))


def test_the_certificate_must_come_from_the_mesh_root(istiod):
    other_root, _ = security.new_root()
    with pytest.raises(xds.XdsUnavailable, match="TLS: .*certificate"):
        _ask(istiod["tls"], _tls(istiod, "good", root=other_root.decode()))


def test_tls_to_a_plaintext_port_says_so(istiod):
    with pytest.raises(xds.XdsUnavailable, match="--plaintext"):
        _ask(istiod["plain"], _tls(istiod, "good"))


class _BigSyncz(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """Answers any request with `count` ClientConfigs (several MB: HTTP/2 flow control)."""

    def __init__(self, count: int):
        self.count = count

    def StreamAggregatedResources(self, request_iterator, context):
        next(request_iterator)
        resources = []
        for i in range(self.count):
            packed = any_pb2.Any()
            packed.Pack(csds_pb2.ClientConfig(
                node=base_pb2.Node(id=f"app-{i:05d}-{'x' * 200}.ns{i % 7}"),
                generic_xds_configs=[csds_pb2.ClientConfig.GenericXdsConfig(
                    type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster",
                    config_status=csds_pb2.SYNCED)]))
            resources.append(packed)
        yield discovery_pb2.DiscoveryResponse(type_url=statusgen.SYNCZ_TYPE,
                                              resources=resources)


def test_a_syncz_of_many_megabytes_arrives_whole():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         options=[("grpc.max_send_message_length", 64 * 1024 * 1024)])
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_BigSyncz(20000), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        proxies = _ask(port, xds.XdsCredentials(None, None, None))
    finally:
        server.stop(0)
    assert len(proxies) == 20000
    assert proxies[-1].name.startswith("app-19999-") and proxies[-1].name.endswith(".ns0")  # 19999 % 7
    assert all(p.synced for p in proxies)
