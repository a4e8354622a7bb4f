"""istiod's sync state over xDS, as `istioctl proxy-status` reads it: the debug type
`istio.io/debug/syncz` asked on an ADS stream (pilot/pkg/xds/statusgen.go), answered with one
CSDS `ClientConfig` per proxy.

How istioctl connects (istioctl/pkg/xds/client.go `DialOptions`, pkg/adsc/adsc.go,
istioctl/pkg/multixds/gather.go): to port 15012 with TLS and a bearer token that a
TokenRequest makes for the service account `default` of the istio namespace, audience
`istio-ca` (the TLS certificate is not verified there; here it is, against the
`istio-ca-root-cert` ConfigMap, for the name `istiod[-<rev>].<ns>.svc`, unless --insecure);
with --cert-dir, the client certificate `cert-chain.pem`/`key.pem` and root `root-cert.pem`
from that directory and no token; with --plaintext, to 15010 without TLS or token (istiod
answers debug types there only with ENABLE_DEBUG_ENDPOINT_AUTH=false).

For `sync --diff`, the same call asks `istio.io/debug/config_dump` with the resource name
`pod.namespace`, as `istioctl proxy-status <pod>` does (istioctl/pkg/proxystatus/proxystatus.go;
`TypeDebugConfigDump` in pilot/pkg/xds/statusgen.go): the answer's resources are the proxy's
config dump sections (`kubectl_mesh.xds.dumpjson`), none when the proxy is not connected to
this istiod (`debugConfigDump`: "like a 404", only logged).
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from typing import Callable

from kubectl_mesh.syncz import ProxySync, from_client_config

ADS_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
SECURE_PORT, PLAINTEXT_PORT = 15012, 15010
TOKEN_SERVICE_ACCOUNT = "default"  # multixds/gather.go tokenServiceAccount
TOKEN_AUDIENCE = "istio-ca"  # istioctl/pkg/xds/client.go tokenAudiences
TOKEN_SECONDS = 3600  # defaultExpirationSeconds
ROOT_CONFIGMAP, ROOT_KEY = "istio-ca-root-cert", "root-cert.pem"


class XdsUnavailable(Exception):
    """This way to istiod's xDS did not work; the message says why, in a few words."""


@dataclass(frozen=True)
class XdsCredentials:
    """How to talk to an xDS port: TLS (None = plaintext), the name its certificate must
    carry, and a bearer token (None with a client certificate or plaintext)."""

    tls: ssl.SSLContext | None
    server_name: str | None
    token: str | None

    @property
    def port(self) -> int:
        return SECURE_PORT if self.tls is not None else PLAINTEXT_PORT


def server_name(istio_namespace: str, revision: str | None) -> str:
    """The name istiod's serving certificate carries (multixds/gather.go `makeSan`)."""
    if revision and revision != "default":
        return f"istiod-{revision}.{istio_namespace}.svc"
    return f"istiod.{istio_namespace}.svc"


def request_token(api, namespace: str) -> str:
    """A TokenRequest for `default` in `namespace` with audience istio-ca; MeshErrors from
    the API (e.g. ForbiddenError: `create serviceaccounts/token`) go up as they are."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": [TOKEN_AUDIENCE], "expirationSeconds": TOKEN_SECONDS}}
    from kubectl_mesh.kube.api import resource_path
    answer = api.request("POST", resource_path("serviceaccounts", namespace,
                                               TOKEN_SERVICE_ACCOUNT) + "/token", json=body)
    token = ((answer or {}).get("status") or {}).get("token")
    if not isinstance(token, str) or not token:
        raise XdsUnavailable(f"the TokenRequest for serviceaccount {namespace}/"
                             f"{TOKEN_SERVICE_ACCOUNT} returned no token")
    return token


def root_certificate(api, namespace: str) -> str | None:
    """The mesh root certificate istiod publishes (`istio-ca-root-cert`), or None."""
    cm = api.get_resource("configmaps", namespace, ROOT_CONFIGMAP, allow_missing=True)
    pem = ((cm or {}).get("data") or {}).get(ROOT_KEY)
    return pem if isinstance(pem, str) and "BEGIN CERTIFICATE" in pem else None


def tls_context(root_pem: str | None, *, insecure: bool = False,
                cert_dir: str | None = None) -> ssl.SSLContext:
    """TLS for 15012: verified against `root_pem` (or --cert-dir's root-cert.pem), with
    --cert-dir's client certificate; `insecure` skips verification (istioctl --insecure)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_alpn_protocols(["h2"])
    if cert_dir:
        root = os.path.join(cert_dir, "root-cert.pem")
        if not insecure:
            ctx.load_verify_locations(cafile=root)
        ctx.load_cert_chain(os.path.join(cert_dir, "cert-chain.pem"),
                            os.path.join(cert_dir, "key.pem"))
    elif root_pem and not insecure:
        ctx.load_verify_locations(cadata=root_pem)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def node_request(namespace: str, type_url: str | None = None,
                 resource_names: tuple[str, ...] = ()) -> bytes:
    """The DiscoveryRequest for a debug type (syncz by default), from a node that is no proxy
    (no PROXY_CONFIG: istiod leaves it out of syncz), in `namespace` as service account
    `default` – what its token proves (pilot/pkg/xds/auth.go `checkConnectionIdentity`)."""
    from kubectl_mesh.xds.messages import SYNCZ_TYPE, discovery_request
    node_id = f"sidecar~127.0.0.1~kubectl-mesh.{namespace}~{namespace}.svc.cluster.local"
    return discovery_request(type_url or SYNCZ_TYPE, node_id, {
        "GENERATOR": "event", "NAMESPACE": namespace,
        "SERVICE_ACCOUNT": TOKEN_SERVICE_ACCOUNT}, resource_names)


def control_plane_id(identifier: str) -> str | None:
    """The istiod instance an answer names (`{"Component","ID","Info"}`: multixds `CpInfo`)."""
    try:
        value = json.loads(identifier)
    except ValueError:
        return None
    return value.get("ID") if isinstance(value, dict) and value.get("ID") else None


class IstiodXds:
    """One istiod's syncz over xDS; `connect()` gives a connected socket-like object (a
    port-forward channel's, or a TCP connection to --xds-address). `name` None: named by
    the istiod's own answer (an external control plane)."""

    def __init__(self, name: str | None, connect: Callable[[], object],
                 credentials: XdsCredentials, namespace: str, timeout: float | None,
                 where: str):
        self.name = name
        self.via = f"XDS {credentials.port}"
        self._connect = connect
        self._credentials = credentials
        self._namespace = namespace
        self._timeout = timeout
        self.where = where

    def close(self) -> None:
        pass  # every call opens and closes its own connection

    def proxies(self, namespace: str | None = None) -> list[ProxySync]:
        """The proxies this istiod lists (those of `namespace` only, if given)."""
        from kubectl_mesh.xds import messages
        response = self._ask(node_request(self._namespace), "a syncz DiscoveryResponse")
        try:
            configs = [messages.client_config(r.value) for r in response.resources
                       if r.type_url == messages.CLIENT_CONFIG_TYPE]
        except messages.DecodeError as e:
            raise XdsUnavailable(f"an answer that is not a syncz DiscoveryResponse ({e})") from e
        if self.name is None:
            self.name = control_plane_id(response.control_plane) or self.where
        out = [from_client_config(c, self.name) for c in configs if c.node_id]
        if namespace:
            out = [p for p in out if p.name.rpartition(".")[2] == namespace]
        return out

    def config_dump(self, proxy_id: str) -> dict | None:
        """What this istiod would send `proxy_id` (`pod.namespace`), in istiod's JSON (as
        `/debug/config_dump?proxyID=` writes it); None when the proxy is not connected here.
        XdsUnavailable also when the dump's fields cannot be named (no Envoy protos)."""
        from kubectl_mesh.xds import dumpjson, messages
        request = node_request(self._namespace, messages.CONFIG_DUMP_TYPE, (proxy_id,))
        response = self._ask(request, "a config dump DiscoveryResponse")
        if not response.resources:
            return None
        try:
            return dumpjson.config_dump(response.resources)
        except (dumpjson.ProtosMissing, dumpjson.UnknownType) as e:
            raise XdsUnavailable(str(e)) from e
        except Exception as e:  # noqa: BLE001 - protobuf's own decode errors, named below
            raise XdsUnavailable(f"istiod's config dump does not decode ({type(e).__name__}: "
                                 f"{e})") from e

    def _ask(self, request: bytes, expected: str):
        """One debug request on a new ADS stream: the first DiscoveryResponse."""
        from kubectl_mesh.xds import grpcstream, messages
        creds = self._credentials
        metadata = {"authorization": f"Bearer {creds.token}"} if creds.token else {}
        try:
            sock = self._connect()
        except (OSError, TimeoutError) as e:
            raise XdsUnavailable(f"cannot connect: {e}") from e
        except Exception as e:  # the port-forward's own errors (MeshError): its message
            raise XdsUnavailable(str(e)) from e
        try:
            reply = grpcstream.call_first(
                sock, ADS_METHOD, request,
                authority=creds.server_name or "istiod", metadata=metadata, tls=creds.tls,
                server_hostname=creds.server_name if creds.tls is not None else None,
                timeout=self._timeout)
            return messages.discovery_response(reply)
        except grpcstream.CallError as e:
            raise XdsUnavailable(str(e)) from e
        except TimeoutError as e:
            raise XdsUnavailable(f"no answer within {self._timeout:g}s") from e
        except messages.DecodeError as e:
            raise XdsUnavailable(f"an answer that is not {expected} ({e})") from e
        except OSError as e:
            raise XdsUnavailable(f"connection failed: {e.strerror or e}") from e
        finally:
            try:
                sock.close()
            except OSError:
                pass
