"""The real control plane's certificates: one cluster CA that signs the API server's serving
certificate, the client certificates of the admin, the controller manager, the scheduler and
the API server's kubelet client, and the service-account signing key pair.

The identities follow kubeadm's (cmd/kubeadm/app/phases/certs and kubeconfig): the admin is in
`system:masters`, the controller manager is `system:kube-controller-manager` and the scheduler
`system:kube-scheduler`, the users the API server's bootstrap RBAC policy binds
(plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go)."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=30)


def _write_private(path: pathlib.Path, data: bytes) -> None:
    """Write a key readable by its owner only, with no moment at a wider mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclasses.dataclass(frozen=True)
class Pair:
    cert: pathlib.Path
    key: pathlib.Path


class Authority:
    """A self-signed CA in `directory` (ca.crt, ca.key) that issues certificates beside it."""

    def __init__(self, directory: pathlib.Path, name: str = "kubectl-mesh-sandbox-ca"):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
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
        _write_private(self.pair.key, _key_pem(self._key))

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
        _write_private(pair.key, _key_pem(key))
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
    _write_private(pair.key, _key_pem(key))
    return pair
