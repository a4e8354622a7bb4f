"""Service-account tokens: TokenRequest (`POST .../serviceaccounts/NAME/token`) and
TokenReview (`POST /apis/authentication.k8s.io/v1/tokenreviews`), as istiod and istioctl use
them: istioctl asks a token for `default` in the istio namespace with audience `istio-ca`
(istioctl/pkg/xds/client.go `DialOptions`), istiod reviews it on its TLS xDS port
(pkg/kube/tokenreview `ValidateK8sJwt`).

Real behaviour followed (k8s.io/kubernetes pkg/registry/core/serviceaccount/storage/token.go
`TokenREST.Create`): the service account must exist (404), expirationSeconds defaults to 3600
and must be at least 600 (422, pkg/apis/authentication/validation/validation.go
`ValidateTokenRequest`), no audiences means the API server's own; `default` exists in every
namespace once the double's controllers have created it (sandbox/controllers.py
`_sync_namespace`, as the controller manager's serviceaccounts controller).
A review (pkg/registry/authentication/tokenreview/storage.go, the service-account
authenticator) authenticates a token that is known, unexpired and shares an audience with the
review's (none given: the API server's), as `system:serviceaccount:NS:NAME` in the groups
`system:serviceaccounts`, `system:serviceaccounts:NS`, `system:authenticated`.
Tokens are JWT-shaped (three base64url parts) but only this double can tell them apart.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

API_AUDIENCES = ("https://kubernetes.default.svc.cluster.local",)
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600


@dataclass(frozen=True)
class Issued:
    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires: float  # time.time()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Tokens:
    """The tokens this API double has issued (in memory: a restart forgets them, and a real
    API server's restart with new keys would too)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._issued: dict[str, Issued] = {}

    def request(self, namespace: str, name: str, sa_uid: str, body: dict) -> tuple[int, dict]:
        from .server import ApiError
        spec = (body or {}).get("spec") or {}
        expiration = spec.get("expirationSeconds") or DEFAULT_EXPIRATION
        if not isinstance(expiration, int) or expiration < MIN_EXPIRATION:
            raise ApiError(422, "Invalid", f'TokenRequest.authentication.k8s.io "{name}" is '
                           f'invalid: spec.expirationSeconds: Invalid value: {expiration}: may '
                           'not specify a duration less than 10 minutes')
        audiences = tuple(spec.get("audiences") or API_AUDIENCES)
        now = time.time()
        claims = {"aud": list(audiences), "exp": int(now + expiration), "iat": int(now),
                  "iss": "https://kubernetes.default.svc.cluster.local",
                  "sub": f"system:serviceaccount:{namespace}:{name}",
                  "kubernetes.io": {"namespace": namespace,
                                    "serviceaccount": {"name": name, "uid": sa_uid}}}
        token = ".".join((_b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode()),
                          _b64(json.dumps(claims).encode()), _b64(secrets.token_bytes(32))))
        with self._lock:
            self._issued = {t: i for t, i in self._issued.items() if i.expires > now}
            self._issued[token] = Issued(namespace, name, sa_uid, audiences, now + expiration)
        expires = datetime.fromtimestamp(int(now + expiration), timezone.utc)
        return 201, {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                     "metadata": {"name": name, "namespace": namespace,
                                  "creationTimestamp": None},
                     "spec": {"audiences": list(audiences), "expirationSeconds": expiration,
                              "boundObjectRef": spec.get("boundObjectRef")},
                     "status": {"token": token,
                                "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}}

    def review(self, body: dict) -> tuple[int, dict]:
        spec = (body or {}).get("spec") or {}
        wanted = tuple(spec.get("audiences") or API_AUDIENCES)
        with self._lock:
            issued = self._issued.get(spec.get("token") or "")
        # An unauthenticated status has no `authenticated` (false is omitted: omitempty);
        # the errors are pkg/serviceaccount/jwt.go `Validate`'s and claims.go's, wrapped by
        # the bearer-token authenticator.
        token = spec.get("token") or ""
        status: dict = {"user": {}}
        if issued is None and token.count(".") != 2:
            status["error"] = "invalid bearer token"  # not a JWT: no authenticator claims it
        elif issued is None:
            status["error"] = ("[invalid bearer token, go-jose/go-jose: error in cryptographic "
                               "primitive]")
        elif issued.expires <= time.time():
            status["error"] = "[invalid bearer token, service account token has expired]"
        elif not set(wanted) & set(issued.audiences):
            status["error"] = ("[invalid bearer token, token audiences "
                               f"{_go_quoted(issued.audiences)} is invalid for the target "
                               f"audiences {_go_quoted(wanted)}]")
        else:
            status = {"authenticated": True, "audiences": [a for a in wanted
                                                           if a in issued.audiences],
                      "user": {"username": f"system:serviceaccount:{issued.namespace}:"
                                           f"{issued.name}",
                               "uid": issued.uid,
                               "groups": ["system:serviceaccounts",
                                          f"system:serviceaccounts:{issued.namespace}",
                                          "system:authenticated"]}}
        return 201, {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                     "metadata": {"creationTimestamp": None},
                     "spec": spec, "status": status}


def _fields(data: bytes):
    """(field number, wire type, value) of a protobuf message (varint and bytes fields)."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def token_request_from_protobuf(raw: bytes) -> dict:
    """A TokenRequest as `kubectl create token` sends it: Kubernetes' protobuf envelope
    (`k8s\\x00` + runtime.Unknown{typeMeta=1, raw=2}, apimachinery
    pkg/runtime/serializer/protobuf) around authentication/v1 TokenRequest{spec=2:
    audiences=1, expirationSeconds=4} (k8s.io/api authentication/v1 generated.proto)."""
    if not raw.startswith(b"k8s\x00"):
        raise ValueError("no k8s protobuf envelope")
    inner = next((v for n, w, v in _fields(raw[4:]) if n == 2 and w == 2), b"")
    spec = next((v for n, w, v in _fields(inner) if n == 2 and w == 2), b"")
    out: dict = {"audiences": []}
    for number, wire, value in _fields(spec):
        if number == 1 and wire == 2:
            out["audiences"].append(value.decode())
        elif number == 4 and wire == 0:
            out["expirationSeconds"] = value
    return {"spec": out}


def service_account_uid(store, namespace: str, name: str) -> str | None:
    """The uid of service account NAME in NAMESPACE; None: no such service account."""
    sa = store.find("serviceaccounts", namespace, name)
    if sa is not None:
        return sa["metadata"].get("uid") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{name}"))
    return None


def _go_quoted(strings) -> str:
    """Go's `%q` of a []string: `["a" "b"]`."""
    return "[" + " ".join(json.dumps(x) for x in strings) + "]"
