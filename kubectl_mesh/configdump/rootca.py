"""The root CA a proxy trusts: the `ROOTCA` secret Istio's agent serves over SDS
(validation_context.trusted_ca), as DER certificates – what `rootca-compare` compares.

As istioctl (istioctl/pkg/writer/envoy/configdump/configdump.go
`PrintPodRootCAFromDynamicSecretDump`, istioctl/pkg/proxyconfig/proxyconfig.go
`checkRootCACertMatchExist`): the dynamic active secret named ROOTCA; two proxies share a root
when any certificate of one bundle equals (byte for byte, x509.Certificate.Equal) any of the
other's."""

from __future__ import annotations

import base64
import binascii
import re

from kubectl_mesh.configdump.keys import normalise
from kubectl_mesh.errors import BadInputError, NotFoundError

ROOTCA = "ROOTCA"
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----",
                       re.S)


def root_ca_certs(secrets_section: dict, source: str) -> tuple[bytes, ...]:
    """The DER certificates of `source`'s ROOTCA secret; NotFoundError when it has none,
    BadInputError when its bundle holds no readable certificate."""
    section = normalise(secrets_section)
    for item in section.get("dynamic_active_secrets") or []:
        if not isinstance(item, dict) or item.get("name") != ROOTCA:
            continue
        trusted = ((item.get("secret") or {}).get("validation_context") or {}).get("trusted_ca")
        if not isinstance(trusted, dict):
            raise BadInputError(f"the ROOTCA secret of {source} has no trusted_ca")
        pem = _data(trusted, source)
        certs = tuple(_der(block, source) for block in _PEM_CERT.findall(pem))
        if not certs:
            raise BadInputError(f"the ROOTCA secret of {source} holds no PEM certificate")
        return certs
    raise NotFoundError(f"{source} has no ROOTCA secret",
                        hint=f"does it get certificates over SDS? see kubectl mesh secrets {source}")


def _data(source_obj: dict, source: str) -> bytes:
    if isinstance(source_obj.get("inline_bytes"), str):
        # A bytes field: base64 in the JSON dump, the PEM once decoded. istioctl decodes it a
        # second time (istioctl/pkg/util/configdump/secret.go GetRootCAFromSecretConfigDump,
        # after protojson already did), which fails on Istio's PEM roots: run on
        # /work/shared/istio-dumps/sidecar_secrets_istio_ca.json its PrintPodRootCAFromDynamic-
        # SecretDump says "failed to decode inlinebytes: illegal base64 data at input byte 0".
        try:
            return base64.b64decode(source_obj["inline_bytes"], validate=True)
        except (binascii.Error, ValueError) as e:
            raise BadInputError(f"the ROOTCA of {source} is not base64") from e
    if isinstance(source_obj.get("inline_string"), str):
        return source_obj["inline_string"].encode()
    raise BadInputError(f"the ROOTCA secret of {source} has no inline certificate data")


def _der(block: bytes, source: str) -> bytes:
    try:
        return base64.b64decode(b"".join(block.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadInputError(f"the ROOTCA of {source} holds a broken PEM block") from e


def share_a_root(a: tuple[bytes, ...], b: tuple[bytes, ...]) -> bool:
    """Whether any certificate of bundle `a` is one of bundle `b`."""
    return bool(set(a) & set(b))
