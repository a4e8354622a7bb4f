"""Secrets (SDS): SecretsConfigDump model with certificate facts, and the secrets table.

Certificates are decoded with `cryptography` when it is installed; without it the
serial/validity fields stay empty (the table still lists the secrets).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt

from kubectl_mesh.configdump.common import Table
from kubectl_mesh.configdump.keys import normalise
from kubectl_mesh.configdump.shape import SHAPE_ERRORS, Malformed, elements, relative, text

def _x509():
    """`cryptography.x509`, imported on first use (36 ms: only the secrets table needs it);
    None where cryptography is absent – decoding is a nicety, not a requirement."""
    try:
        from cryptography import x509
    except ImportError:  # pragma: no cover - exercised only where cryptography is absent
        return None
    return x509


@dataclasses.dataclass(frozen=True)
class CertInfo:
    """Facts about the FIRST certificate of a chain/bundle (the leaf, or the first CA)."""

    serial: str = ""  # lower-case hex, at least 32 digits: istioctl's `%032x`
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    trust_domain: str = ""  # SPIFFE validator bundles only

    def valid_at(self, now: dt.datetime) -> bool:
        return bool(self.not_before and self.not_after and self.not_before <= now <= self.not_after)


@dataclasses.dataclass(frozen=True)
class Secret:
    name: str
    kind: str  # "Cert Chain" (tls_certificate) | "CA" (validation_context) | ""
    status: str  # ACTIVE | WARMING
    certs: tuple[CertInfo, ...]  # one per chain/bundle (several trust domains for SPIFFE)
    version_info: str
    last_updated: str
    raw: dict = dataclasses.field(repr=False, compare=False)


def parse_secrets(section: dict, at=relative) -> list[Secret]:
    """SecretsConfigDump → secrets: warming first (as istioctl), then active, then static;
    Malformed names the JSON path (`at(field, i)`) of a wrongly shaped one."""
    out = []
    for field, status in (("dynamic_warming_secrets", "WARMING"),
                          ("dynamic_active_secrets", "ACTIVE"), ("static_secrets", "ACTIVE")):
        for path, item in elements(section, field, at):
            try:
                item = normalise(item)
                secret = item.get("secret") or {}
                kind, blobs = _cert_material(secret)
                certs = tuple(_cert_info(blob, td) for td, blob in blobs)
                out.append(Secret(text(item, "name") or text(secret, "name"), kind, status,
                                  certs, text(item, "version_info"), text(item, "last_updated"),
                                  item))
            except (Malformed, *SHAPE_ERRORS) as e:
                raise Malformed.of(path, e) from e
    return out


def _cert_material(secret: dict) -> tuple[str, list[tuple[str, dict]]]:
    """(kind, [(trust domain, DataSource)]) of a Secret."""
    if "tls_certificate" in secret:
        return "Cert Chain", [("", (secret["tls_certificate"] or {}).get("certificate_chain") or {})]
    if "validation_context" in secret:
        vc = secret["validation_context"] or {}
        spiffe = ((vc.get("custom_validator_config") or {}).get("typed_config") or {})
        domains = spiffe.get("trust_domains") or ()
        if domains:
            return "CA", [(text(d, "name"), d.get("trust_bundle") or {}) for d in domains]
        return "CA", [("", vc.get("trusted_ca") or {})]
    return "", []


def _cert_info(source: dict, trust_domain: str) -> CertInfo:
    pem = _pem_bytes(source)
    x509 = _x509() if pem else None
    if x509 is None:
        return CertInfo(trust_domain=trust_domain)
    try:
        cert = x509.load_pem_x509_certificate(_first_pem(pem))
    except ValueError:
        return CertInfo(trust_domain=trust_domain)
    # As istioctl/pkg/writer/compare/sds/util.go secretMetaFromCert: the serial as
    # fmt.Sprintf("%032x"), and, where no SPIFFE bundle named it, the trust domain from the
    # certificate's spiffe:// URI.
    return CertInfo(format(cert.serial_number, "032x"), cert.not_valid_before_utc,
                    cert.not_valid_after_utc, trust_domain or _spiffe_domain(x509, cert))


def _spiffe_domain(x509, cert) -> str:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    uris = [u for u in names.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith("spiffe://")]
    return uris[-1][len("spiffe://"):].split("/", 1)[0] if uris else ""


def _pem_bytes(source: dict) -> bytes:
    if "inline_bytes" in source:
        try:
            return base64.b64decode(text(source, "inline_bytes"))
        except ValueError:
            return b""
    if "inline_string" in source:
        return text(source, "inline_string").encode()
    return b""


def _first_pem(pem: bytes) -> bytes:
    end = b"-----END CERTIFICATE-----"
    i = pem.find(end)
    return pem[: i + len(end)] if i >= 0 else pem


SECRET_HEADERS = ("RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER",
                  "NOT AFTER", "NOT BEFORE")


def _ts(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def secret_table(secrets: list[Secret], now: dt.datetime | None = None,
                 wide: bool = False) -> Table:
    """One row per certificate (a SPIFFE CA has one per trust domain); `now` decides VALID CERT
    (default: the current UTC time). TRUST DOMAIN is shown when every certificate has one (as
    istioctl does for SPIRE federation), and always with wide, which adds LAST UPDATED."""
    now = now or dt.datetime.now(dt.timezone.utc)
    # istioctl (compare/sds/writer.go) shows the column only when every certificate has a
    # trust domain: federation; a partial column would mislead.
    certs = [c for s in secrets for c in s.certs or (CertInfo(),)]
    domains = wide or bool(certs) and all(c.trust_domain for c in certs)
    rows = []
    for s in secrets:
        for cert in s.certs or (CertInfo(),):
            row = (s.name, s.kind, s.status, str(cert.valid_at(now)).lower(), cert.serial,
                   _ts(cert.not_after), _ts(cert.not_before))
            if domains:
                row += (cert.trust_domain,)
            if wide:
                row += (s.last_updated,)
            rows.append(row)
    headers = SECRET_HEADERS + (("TRUST DOMAIN",) if domains else ()) + \
        (("LAST UPDATED",) if wide else ())
    return Table(headers, rows, [s.raw for s in secrets])
