"""istiod's TLS xDS port (15012): its CA, serving certificate and caller authentication.

- The CA: istiod's self-signed root, shared by every replica through the Secret
  `istio-ca-secret` (keys `ca-cert.pem`, `ca-key.pem`) in istiod's namespace – the first
  replica creates it, the others load it (security/pkg/pki/ca/ca.go
  `NewSelfSignedIstioCAOptions`); its root is published as the ConfigMap
  `istio-ca-root-cert` (key `root-cert.pem`, label `istio.io/config: "true"`) in every
  namespace but kube-public, kube-node-lease and local-path-storage, also those created
  later (pilot/pkg/serviceregistry/kube/controller/namespacecontroller.go
  `reconcileCACertAndCRL`, ignoring pkg/kube/inject `IgnoredNamespaces` minus kube-system;
  security/pkg/k8s/configutil.go `InsertDataToConfigMap`): `RootCertPublisher`. The
  `istio-ca-crl` ConfigMap, written only for a plugged-in CA's CRL, is not (the injected
  volume is optional).
- The serving certificate: DNS names `istiod.<ns>.svc`, `istiod-<rev>.<ns>.svc` and the
  service's short names (pilot/pkg/bootstrap/server.go `getDNSNames`; istioctl checks
  `istiod[-<rev>].<ns>.svc`, multixds/gather.go `makeSan`).
- Callers: a bearer token in the `authorization` metadata, reviewed by the API server
  with audience `istio-ca` (security/pkg/server/ca/authenticate/kubeauth/kube_jwt.go,
  pkg/kube/tokenreview `ValidateK8sJwt`): the identity is
  `spiffe://cluster.local/ns/<ns>/sa/<sa>` of a service-account token, else the stream is
  refused `Unauthenticated` (pilot/pkg/xds/ads.go `StreamAggregatedResources`).
"""

from __future__ import annotations

import base64
import datetime
import logging
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("sandbox.istiod.security")

CA_SECRET = "istio-ca-secret"
ROOT_CONFIGMAP = "istio-ca-root-cert"
TOKEN_AUDIENCE = "istio-ca"  # pkg/security TokenAudiences: the trust domain's default
TRUST_DOMAIN = "cluster.local"
VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True)
class Identity:
    namespace: str
    service_account: str

    @property
    def spiffe(self) -> str:
        return f"spiffe://{TRUST_DOMAIN}/ns/{self.namespace}/sa/{self.service_account}"


class AuthenticationError(Exception):
    pass


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_root() -> tuple[bytes, bytes]:
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, TRUST_DOMAIN)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def serving_names(namespace: str, revision: str) -> tuple[str, ...]:
    names = [f"istiod.{namespace}.svc"]
    if revision and revision != "default":
        names.append(f"istiod-{revision}.{namespace}.svc")
    return tuple(names + ["istiod", f"istiod.{namespace}"])


def issue_serving(ca_cert_pem: bytes, ca_key_pem: bytes,
                  names: tuple[str, ...]) -> tuple[bytes, bytes]:
    """(certificate chain PEM, key PEM) for istiod's TLS port, signed by the CA."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=True)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM) + ca_cert_pem, _pem_key(key)


class ClusterCa:
    """The CA istiod's replicas share, kept in the cluster (needs the API)."""

    def __init__(self, session, server: str, namespace: str):
        self._session = session
        self._server = server
        self.namespace = namespace

    def _url(self, path: str) -> str:
        return f"{self._server}/api/v1/namespaces/{self.namespace}/{path}"

    def load_or_create(self, attempts: int = 50) -> tuple[bytes, bytes]:
        """(CA cert PEM, CA key PEM) from `istio-ca-secret`, created if missing."""
        for _ in range(attempts):
            resp = self._session.get(self._url(f"secrets/{CA_SECRET}"), timeout=10)
            if resp.status_code == 200:
                data = resp.json().get("data") or {}
                return base64.b64decode(data["ca-cert.pem"]), base64.b64decode(data["ca-key.pem"])
            if resp.status_code == 404:
                cert, key = new_root()
                body = {"apiVersion": "v1", "kind": "Secret", "type": "istio.io/ca-root",
                        "metadata": {"name": CA_SECRET, "namespace": self.namespace},
                        "data": {"ca-cert.pem": base64.b64encode(cert).decode(),
                                 "ca-key.pem": base64.b64encode(key).decode()}}
                created = self._session.post(self._url("secrets"), json=body, timeout=10)
                if created.status_code == 201:
                    return cert, key
                continue  # 409: another replica was first; load theirs
            time.sleep(0.2)
        raise OSError(f"cannot load or create secret {self.namespace}/{CA_SECRET}")


class RootCertPublisher:
    """istiod's namespace controller for the root certificate: every namespace not ignored
    holds `istio-ca-root-cert` with this CA's root, created when missing and put back when
    changed (`reconcileCACertAndCRL`, configutil.go `InsertDataToConfigMap`: other keys
    kept). Two control planes with different roots in one cluster overwrite each other, as
    real ones do; control planes of one mesh share the root."""
    IGNORED = frozenset({"kube-public", "kube-node-lease", "local-path-storage"})

    def __init__(self, session, server: str, cert: bytes):
        self._session = session
        self._server = server
        self._root = cert.decode()

    def publish(self, namespaces, current: dict[str, dict] | None = None) -> None:
        """Reconcile `namespaces`; `current`: the ConfigMaps by namespace as last seen (a
        namespace missing there is created, or looked up when it already exists)."""
        for ns in namespaces:
            if ns in self.IGNORED:
                continue
            seen = (current or {}).get(ns)
            if seen is not None and (seen.get("data") or {}).get("root-cert.pem") == self._root:
                continue
            try:
                self._reconcile(ns, seen)
            except OSError as e:  # requests' errors too: tried again at the next change
                log.warning("cannot publish %s in namespace %s: %s", ROOT_CONFIGMAP, ns, e)

    def _reconcile(self, ns: str, seen: dict | None) -> None:
        url = f"{self._server}/api/v1/namespaces/{ns}/configmaps"
        if seen is None:
            body = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CONFIGMAP, "namespace": ns,
                                 "labels": {"istio.io/config": "true"}},
                    "data": {"root-cert.pem": self._root}}
            resp = self._session.post(url, json=body, timeout=10)
            if resp.status_code != 409:
                self._check(resp, ns)
                return
            resp = self._session.get(f"{url}/{ROOT_CONFIGMAP}", timeout=10)
            if resp.status_code != 200:
                self._check(resp, ns)
                return
            seen = resp.json()
        if (seen.get("data") or {}).get("root-cert.pem") == self._root:
            return
        updated = dict(seen, data=dict(seen.get("data") or {}, **{"root-cert.pem": self._root}))
        self._check(self._session.put(f"{url}/{ROOT_CONFIGMAP}", json=updated, timeout=10), ns)

    @staticmethod
    def _check(resp, ns: str) -> None:
        # 404/409: the namespace is going away, or another writer was first (the next
        # change of the ConfigMap brings it back here)
        if resp.status_code not in (200, 201, 404, 409):
            log.warning("cannot publish %s in namespace %s: HTTP %d", ROOT_CONFIGMAP, ns,
                        resp.status_code)


class TokenAuthenticator:
    """KubeJWTAuthenticator: a TokenReview with audience istio-ca per stream."""

    def __init__(self, session, server: str):
        self._session = session
        self._server = server

    def authenticate(self, metadata) -> Identity:
        token = None
        for key, value in metadata:
            if key == "authorization" and value.startswith("Bearer "):
                token = value[len("Bearer "):]
        if token is None:
            raise AuthenticationError("no HTTP authorization header exists")
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                  "spec": {"token": token, "audiences": [TOKEN_AUDIENCE]}}
        resp = self._session.post(f"{self._server}/apis/authentication.k8s.io/v1/tokenreviews",
                                  json=review, timeout=10)
        if resp.status_code != 201 and resp.status_code != 200:
            raise AuthenticationError(f"token review: HTTP {resp.status_code}")
        status = resp.json().get("status") or {}
        if status.get("error"):
            raise AuthenticationError("the service account authentication returns an error: "
                                      f"{status['error']}")
        if not status.get("authenticated"):
            raise AuthenticationError("the token is not authenticated")
        user = status.get("user") or {}
        if "system:serviceaccounts" not in (user.get("groups") or []):
            raise AuthenticationError("the token is not a service account")
        parts = (user.get("username") or "").split(":")
        if len(parts) != 4:
            raise AuthenticationError("invalid username field in the token review result")
        return Identity(parts[2], parts[3])
