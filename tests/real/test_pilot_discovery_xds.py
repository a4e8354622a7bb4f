"""Our xDS client against the REAL istiod (`pilot-discovery`, built by `make
real-components`) on the real control plane: the wire format (gRPC over h2, our protobuf
codec), the TLS port's certificate checked against the `istio-ca-root-cert` the real istiod
publishes, a real TokenRequest/TokenReview, and istiod's refusal of the debug type on the
plaintext port – through `kubectl mesh sync --xds-address` as a user runs it. A fake proxy
(grpcio, envoy's protos) connects so syncz has something to list: STALE until it ACKs, then
SYNCED."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
from concurrent import futures

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import struct_pb2
from google.rpc import status_pb2

from sandbox.real.controlplane import locate_binaries
from sandbox.testing import kubectl_binary, wait_until

pytestmark = pytest.mark.timeout(240)
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"


@pytest.fixture(scope="module")
def istiod(control_plane, tmp_path_factory):
    cp = control_plane
    status, _ = cp.request("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})
    assert status in (201, 409)
    work = tmp_path_factory.mktemp("pilot")
    log = open(work / "pilot.log", "w")
    address = cp.address
    env = dict(os.environ, POD_NAMESPACE="istio-system", POD_NAME="istiod-real",
               REVISION="default")
    process = subprocess.Popen(
        [str(locate_binaries() / "pilot-discovery"), "discovery",
         "--kubeconfig", str(cp.state_dir / "kubeconfig"),
         "--grpcAddr", f"{address}:15010", "--secureGRPCAddr", f"{address}:15012",
         "--httpAddr", f"{address}:8080", "--httpsAddr", "",
         "--monitoringAddr", f"{address}:15014", "--meshConfig", str(work / "none")],
        env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "starting secure gRPC discovery service" in
                   (work / "pilot.log").read_text(), timeout=90, what="pilot-discovery ready")
        yield {"address": address, "kubeconfig": str(cp.state_dir / "kubeconfig"),
               "log": work / "pilot.log"}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()


def _sync(istiod, *args):
    env = dict(os.environ, KUBECONFIG=istiod["kubeconfig"],
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.run([kubectl_binary(), "mesh", "sync", *args], env=env,
                          capture_output=True, text=True, timeout=60)


class FakeProxy:
    """An ADS stream that looks like a sidecar to istiod (PROXY_CONFIG in its metadata)."""

    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(f"{address}:15010")
        self.requests: queue.Queue = queue.Queue()
        self.responses: queue.Queue = queue.Queue()
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        self.call = stub.StreamAggregatedResources(iter(self.requests.get, None))
        self.pool = futures.ThreadPoolExecutor(1)
        self.pool.submit(self._drain)
        meta = struct_pb2.Struct()
        meta.update({"NAMESPACE": "default", "CLUSTER_ID": "Kubernetes",
                     "ISTIO_VERSION": "1.28.0", "PROXY_CONFIG": {}})
        self.node = {"id": "sidecar~127.0.0.9~fake-1.default~default.svc.cluster.local",
                     "metadata": meta}

    def _drain(self):
        try:
            for response in self.call:
                self.responses.put(response)
        except grpc.RpcError:
            pass

    def subscribe(self):
        self.requests.put(discovery_pb2.DiscoveryRequest(type_url=CDS, node=self.node))
        return self.responses.get(timeout=30)

    def ack(self, response):
        self.requests.put(discovery_pb2.DiscoveryRequest(
            type_url=CDS, version_info=response.version_info,
            response_nonce=response.nonce))

    def close(self):
        self.requests.put(None)
        self.call.cancel()
        self.pool.shutdown(wait=True)
        self.channel.close()


def _statuses(out) -> dict:
    return {p["name"]: {t: v["status"] for t, v in p["types"].items() if v["status"] != "IGNORED"}
            for p in json.loads(out.stdout)}


def test_sync_reads_the_real_istiods_syncz_over_tls_with_a_token(istiod):
    xds = f"{istiod['address']}:15012"
    out = _sync(istiod, "--xds-address", xds, "--authority", "istiod.istio-system.svc")
    assert out.returncode == 0, out.stderr
    assert "no proxies in any namespace are connected to istiod (istiod-real)" in out.stderr
    proxy = FakeProxy(istiod["address"])
    try:
        first = proxy.subscribe()
        out = _sync(istiod, "--xds-address", xds, "--authority", "istiod.istio-system.svc",
                    "-o", "json")
        assert out.returncode == 7, out.stderr  # sent, not yet ACKed
        assert _statuses(out) == {"fake-1.default": {"CDS": "STALE"}}
        data = json.loads(out.stdout)[0]
        assert data["istiod"] == "istiod-real" and data["cluster"] == "Kubernetes"
        assert data["istioVersion"] == "1.28.0" and data["types"]["CDS"]["sentTime"]
        proxy.ack(first)
        wait_until(lambda: _sync(istiod, "--xds-address", xds, "--authority",
                                 "istiod.istio-system.svc").returncode == 0,
                   timeout=20, what="SYNCED after the ACK")
    finally:
        proxy.close()


def test_the_real_istiod_refuses_the_debug_type_on_its_plaintext_port(istiod):
    out = _sync(istiod, "--xds-address", f"{istiod['address']}:15010", "--plaintext")
    assert out.returncode == 5
    assert "gRPC Unauthenticated: authentication required" in out.stderr


def test_the_real_istiods_certificate_is_checked(istiod):
    out = _sync(istiod, "--xds-address", f"{istiod['address']}:15012")  # an IP, not the SAN
    assert out.returncode == 5 and "TLS: IP address mismatch" in out.stderr
    out = _sync(istiod, "--xds-address", f"{istiod['address']}:15012", "--insecure")
    assert out.returncode == 0, out.stderr


def _client_certificate(istiod, directory, spiffe: str):
    """cert-chain.pem/key.pem for `spiffe` signed by the real istiod's self-signed CA
    (Secret istio-system/istio-ca-secret), and its root-cert.pem, in `directory`."""
    import base64
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    env = dict(os.environ, KUBECONFIG=istiod["kubeconfig"])
    secret = subprocess.run([kubectl_binary(), "get", "secret", "istio-ca-secret", "-n",
                             "istio-system", "-o", "json"], env=env, capture_output=True,
                            text=True, timeout=30, check=True)
    data = json.loads(secret.stdout)["data"]
    ca_pem, ca_key_pem = (base64.b64decode(data["ca-cert.pem"]),
                          base64.b64decode(data["ca-key.pem"]))
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(spiffe)]), critical=True)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir()
    (directory / "cert-chain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (directory / "root-cert.pem").write_bytes(ca_pem)
    return directory


def test_cert_dir_authenticates_with_a_client_certificate(istiod, tmp_path):
    """--cert-dir as istioctl's: no token, the client certificate's SPIFFE identity (real
    istiod's ClientCertAuthenticator), root-cert.pem to check the server with."""
    xds = f"{istiod['address']}:15012"
    mine = _client_certificate(istiod, tmp_path / "system",
                               "spiffe://cluster.local/ns/istio-system/sa/default")
    out = _sync(istiod, "--xds-address", xds, "--authority", "istiod.istio-system.svc",
                "--cert-dir", str(mine))
    assert out.returncode == 0, out.stderr
    assert "connected to istiod (istiod-real)" in out.stderr
    # an identity of another namespace than the node claims is refused (checkConnectionIdentity)
    other = _client_certificate(istiod, tmp_path / "shop",
                                "spiffe://cluster.local/ns/shop/sa/default")
    out = _sync(istiod, "--xds-address", xds, "--authority", "istiod.istio-system.svc",
                "--cert-dir", str(other))
    assert out.returncode == 5 and "PermissionDenied" in out.stderr, out.stderr


def test_a_delta_stream_on_the_real_istiod(istiod):
    """What the sandbox istiod's delta stream imitates (tests/sandbox/test_istiod_delta.py),
    on the real one: named resources without a version, `system_version_info` + UUID as the
    nonce, an EDS subscription answered with the new names only (an unknown name with an
    empty ClusterLoadAssignment, not a removal), ACKs making syncz SYNCED and a NACK
    recorded as ERROR whatever its nonce."""
    eds = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    channel = grpc.insecure_channel(f"{istiod['address']}:15010")
    requests: queue.Queue = queue.Queue()
    responses: queue.Queue = queue.Queue()
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources(
        iter(requests.get, None))
    pool = futures.ThreadPoolExecutor(1)

    def drain():
        try:
            for response in call:
                responses.put(response)
        except grpc.RpcError:
            pass

    def receive(type_url):
        """The next response of `type_url`; pushes of other types are ACKed on the way."""
        while True:
            response = responses.get(timeout=30)
            if response.type_url == type_url:
                return response
            requests.put(discovery_pb2.DeltaDiscoveryRequest(
                type_url=response.type_url, response_nonce=response.nonce))

    def statuses():
        out = _sync(istiod, "--xds-address", f"{istiod['address']}:15012", "--authority",
                    "istiod.istio-system.svc", "-o", "json")
        return _statuses(out).get("fake-2.default", {})

    pool.submit(drain)
    meta = struct_pb2.Struct()
    meta.update({"NAMESPACE": "default", "CLUSTER_ID": "Kubernetes",
                 "ISTIO_VERSION": "1.28.0", "PROXY_CONFIG": {}})
    node = {"id": "sidecar~127.0.0.10~fake-2.default~default.svc.cluster.local",
            "metadata": meta}
    try:
        requests.put(discovery_pb2.DeltaDiscoveryRequest(type_url=CDS, node=node))
        clusters = receive(CDS)
        assert clusters.resources and all(r.name and not r.version for r in clusters.resources)
        assert clusters.nonce.startswith(clusters.system_version_info)
        assert len(clusters.nonce) == len(clusters.system_version_info) + 36
        kubernetes = next(r.name for r in clusters.resources
                          if r.name.startswith("outbound|443||kubernetes."))
        requests.put(discovery_pb2.DeltaDiscoveryRequest(type_url=CDS,
                                                         response_nonce=clusters.nonce))
        requests.put(discovery_pb2.DeltaDiscoveryRequest(
            type_url=eds, resource_names_subscribe=[kubernetes]))
        endpoints = receive(eds)
        assert {r.name for r in endpoints.resources} == {kubernetes}
        nowhere = "outbound|80||nowhere.default.svc.cluster.local"
        requests.put(discovery_pb2.DeltaDiscoveryRequest(
            type_url=eds, response_nonce=endpoints.nonce, resource_names_subscribe=[nowhere]))
        added = receive(eds)
        assert [r.name for r in added.resources] == [nowhere] and not added.removed_resources
        requests.put(discovery_pb2.DeltaDiscoveryRequest(type_url=eds,
                                                         response_nonce=added.nonce))
        wait_until(lambda: statuses() == {"CDS": "SYNCED", "EDS": "SYNCED"}, timeout=20,
                   what="CDS and EDS SYNCED after the ACKs")
        requests.put(discovery_pb2.DeltaDiscoveryRequest(
            type_url=CDS, response_nonce="not-the-last-nonce",
            error_detail=status_pb2.Status(code=13, message="Envoy says no")))
        wait_until(lambda: statuses().get("CDS") == "ERROR", timeout=20,
                   what="CDS ERROR after a NACK with a stale nonce")
    finally:
        requests.put(None)
        call.cancel()
        pool.shutdown(wait=True)
        channel.close()
