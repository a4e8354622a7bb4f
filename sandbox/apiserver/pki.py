"""Certificates for the sandbox's API servers: a self-signed CA (`Authority`) that issues
serving and client certificates, and service-account signing keys.

The API double uses one CA and a serving certificate (`write_ca_and_server_cert`). The real
control plane (sandbox/real) issues kubeadm's identities from it: the admin in
`system:masters`, the controller manager `system:kube-controller-manager`, the scheduler
`system:kube-scheduler` (cmd/kubeadm/app/phases/certs and kubeconfig), the users the API
server's bootstrap RBAC policy binds (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..credentials import private_dir, write_private

VALIDITY = datetime.timedelta(days=30)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclasses.dataclass(frozen=True)
class Pair:
    cert: pathlib.Path
    key: pathlib.Path


class Authority:
    """A self-signed CA in `directory` (ca.crt, ca.key) that issues certificates beside it."""

    def __init__(self, directory: pathlib.Path, name: str = "kubectl-mesh-sandbox-ca", *,
                 keep_key: bool = True):
        """`keep_key`: write ca.key too (the controller manager signs with it); the API double
        needs none on disk."""
        private_dir(directory)
        self.directory = directory
        self._now = datetime.datetime.now(datetime.timezone.utc)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self._cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(self._now - datetime.timedelta(minutes=5))
            .not_valid_after(self._now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, True, True, False, False),
                           critical=True)
            .sign(self._key, hashes.SHA256()))
        self.pair = Pair(directory / "ca.crt", directory / "ca.key")
        self.pair.cert.write_bytes(self.pem)
        if keep_key:
            write_private(self.pair.key, _key_pem(self._key))

    @classmethod
    def load(cls, directory: pathlib.Path) -> "Authority":
        """The CA a previous `Authority(directory)` wrote (ca.crt, ca.key), to issue more
        certificates from another process (a test adding a user to a running cluster)."""
        ca = cls.__new__(cls)
        ca.directory = directory
        ca._now = datetime.datetime.now(datetime.timezone.utc)
        ca.pair = Pair(directory / "ca.crt", directory / "ca.key")
        ca._cert = x509.load_pem_x509_certificate(ca.pair.cert.read_bytes())
        ca._key = serialization.load_pem_private_key(ca.pair.key.read_bytes(), password=None)
        return ca

    @property
    def pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, name: str, common_name: str, *, organizations: tuple[str, ...] = (),
              server_names: tuple[str, ...] = (), client: bool = True) -> Pair:
        """Issue `name`.crt/.key: a client certificate for `common_name` in `organizations`,
        and a serving certificate too when `server_names` (DNS names or IPs) are given."""
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        key = ec.generate_private_key(ec.SECP256R1())
        usages = ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else []) + \
                 ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else [])
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(self._cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(self._now - datetime.timedelta(minutes=5))
            .not_valid_after(self._now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        if server_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [_alt_name(n) for n in server_names]), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        pair = Pair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_private(pair.key, _key_pem(key))
        return pair


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def write_service_account_keys(directory: pathlib.Path) -> Pair:
    """The key pair kube-apiserver signs service-account tokens with (sa.key) and verifies
    them with (sa.pub); the controller manager signs its tokens with sa.key too."""
    key = ec.generate_private_key(ec.SECP256R1())
    pair = Pair(directory / "sa.pub", directory / "sa.key")
    pair.cert.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    write_private(pair.key, _key_pem(key))
    return pair


def write_ca_and_server_cert(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    """The API double's CA and serving certificate (localhost, 127.0.0.1) in `directory`:
    (ca.crt, server.crt, server.key)."""
    ca = Authority(directory, name="sandbox-ca", keep_key=False)
    server = ca.issue("server", "sandbox-apiserver", server_names=("localhost", "127.0.0.1"),
                      client=False)
    return ca.pair.cert, server.cert, server.key
