"""istiod's xDS debug types (pilot/pkg/xds/statusgen.go): `istio.io/debug/syncz` answered on
the ADS stream with one `envoy.service.status.v3.ClientConfig` per connected proxy.

`handleInternalRequest`: with ENABLE_DEBUG_ENDPOINT_AUTH (default true) a caller without a
verified identity (the plaintext port 15010, or no token) gets `Unauthenticated:
authentication required`; a caller from another namespace than the system namespace (or
DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES) sees its own namespace's proxies only
(`callerNamespaceFilter`). `debugSyncz`: proxies only (nodes with PROXY_CONFIG), each type the
proxy watches as a `GenericXdsConfig` with `config_status` (`debugSyncStatus`: ERROR if the
last push was NACKed, NOT_SENT if nothing was sent, SYNCED if the sent nonce was ACKed, else
STALE), `last_updated` = the last send time (Go's zero time when never sent) and, after a
NACK, `error_state`; sorted by type URL; node metadata CLUSTER_ID, NAMESPACE, ISTIO_VERSION.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone

from envoy.admin.v3 import config_dump_shared_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import any_pb2, struct_pb2, timestamp_pb2

DEBUG_TYPE_PREFIX = "istio.io/debug/"
SYNCZ_TYPE = DEBUG_TYPE_PREFIX + "syncz"
CONFIG_DUMP_TYPE = DEBUG_TYPE_PREFIX + "config_dump"
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=timezone.utc)


def env_bool(name: str, default: bool) -> bool:
    """pkg/env's bool parsing (strconv.ParseBool): 1, t, T, TRUE, true, True and the false
    forms; anything else keeps the default."""
    value = os.environ.get(name)
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return default


@dataclass(frozen=True)
class DebugAccess:
    """pilot/pkg/features: ENABLE_DEBUG_ENDPOINT_AUTH, DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES,
    and the system namespace (istiod's own: the mesh's root namespace by default)."""

    auth: bool = True
    system_namespace: str = "istio-system"
    allowed_namespaces: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls) -> "DebugAccess":
        allowed = os.environ.get("DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES", "")
        return cls(auth=env_bool("ENABLE_DEBUG_ENDPOINT_AUTH", True),
                   system_namespace=os.environ.get("POD_NAMESPACE") or "istio-system",
                   allowed_namespaces=frozenset(n for n in allowed.split(",") if n))

    def caller_namespace(self, identity_namespace: str | None) -> str:
        """The namespace a caller is restricted to; "" = every namespace."""
        if not self.auth or identity_namespace is None:
            return ""
        if identity_namespace == self.system_namespace or \
                identity_namespace in self.allowed_namespaces:
            return ""
        return identity_namespace


class Unauthenticated(Exception):
    """A debug type asked without a verified identity while debug auth is on."""


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime((value or GO_ZERO_TIME).astimezone(timezone.utc).replace(tzinfo=None))
    return ts


def config_status(watched) -> int:
    """`debugSyncStatus`."""
    if watched.last_error:
        return csds_pb2.ERROR
    if not watched.nonce_sent:
        return csds_pb2.NOT_SENT
    if watched.nonce_acked == watched.nonce_sent:
        return csds_pb2.SYNCED
    return csds_pb2.STALE


def client_config(conn) -> csds_pb2.ClientConfig:
    """One proxy's ClientConfig, as `debugSyncz` builds it."""
    proxy = conn.proxy
    configs = []
    for type_url, w in sorted(conn.watched_copy().items()):
        c = csds_pb2.ClientConfig.GenericXdsConfig(
            type_url=type_url, config_status=config_status(w),
            last_updated=_timestamp(w.sent_time))
        if w.last_error:
            c.error_state.CopyFrom(config_dump_shared_pb2.UpdateFailureState(
                last_update_attempt=_timestamp(w.sent_time), details=w.last_error))
        configs.append(c)
    metadata = struct_pb2.Struct()
    # model.NodeMetadata{ClusterID, Namespace, IstioVersion}.ToStruct(): empty fields omitted
    for key, value in (("CLUSTER_ID", proxy.cluster_id), ("NAMESPACE", proxy.config_namespace),
                       ("ISTIO_VERSION", proxy.istio_version)):
        if value:
            metadata[key] = value
    return csds_pb2.ClientConfig(node=base_pb2.Node(id=proxy.id, metadata=metadata),
                                 generic_xds_configs=configs)


def generate(type_url: str, connections, identity_namespace: str | None,
             access: DebugAccess, names: list[str] = ()) -> list[any_pb2.Any]:
    """The resources of a debug type's response (`handleInternalRequest`): for syncz the
    proxies' ClientConfigs; for `istio.io/debug/config_dump` with one resource name (a proxy
    id) the sections of what istiod would send it, without EDS (`debugConfigDump`:
    `connectionConfigDump(conn, false)`, `AnyToUnnamedResources`); nothing for a proxy not
    connected here, in another namespace than a restricted caller's, or not one name."""
    if access.auth and identity_namespace is None:
        raise Unauthenticated("authentication required")
    caller = access.caller_namespace(identity_namespace)
    out = []
    if type_url == SYNCZ_TYPE:
        for conn in connections:
            proxy = conn.proxy
            if proxy is None or not proxy.is_proxy:
                continue
            if caller and proxy.config_namespace != caller:
                continue
            packed = any_pb2.Any()
            packed.Pack(client_config(conn))
            out.append(packed)
    elif type_url == CONFIG_DUMP_TYPE and len(names) == 1:
        conn = next((c for c in reversed(list(connections))
                     if c.proxy is not None and c.proxy.id == names[0]), None)
        if conn is not None and (not caller or conn.proxy.config_namespace == caller):
            from sandbox.istiod.debug import config_dump_message
            out.extend(config_dump_message(conn).configs)
    return out
