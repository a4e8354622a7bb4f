"""The xDS messages a debug request needs, encoded and decoded with `protowire`.

Field numbers are envoy's API (envoy/service/discovery/v3/discovery.proto,
envoy/config/core/v3/base.proto, envoy/service/status/v3/csds.proto,
envoy/admin/v3/config_dump_shared.proto, google/protobuf/struct.proto, timestamp.proto);
tests check every encoding against the generated protobuf classes.

istiod answers the debug type `istio.io/debug/syncz` with one `ClientConfig` per connected
proxy (pilot/pkg/xds/statusgen.go `debugSyncz`): the node id (`pod.namespace`), node metadata
with CLUSTER_ID, NAMESPACE and ISTIO_VERSION, and one `GenericXdsConfig` per watched type
with its `config_status`, `last_updated` (the last send) and, after a NACK, `error_state`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from kubectl_mesh.xds import protowire as pw
from kubectl_mesh.xds.protowire import DecodeError

SYNCZ_TYPE = "istio.io/debug/syncz"  # pilot/pkg/xds/statusgen.go TypeDebugSyncronization
CONFIG_DUMP_TYPE = "istio.io/debug/config_dump"  # statusgen.go TypeDebugConfigDump
CLIENT_CONFIG_TYPE = "type.googleapis.com/envoy.service.status.v3.ClientConfig"
# envoy.service.status.v3.ConfigStatus
CONFIG_STATUS = {0: "UNKNOWN", 1: "SYNCED", 2: "NOT_SENT", 3: "STALE", 4: "ERROR"}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_GO_ZERO_SECONDS = -62135596800  # timestamppb.New(time.Time{}): a type never sent


def struct_of(values: dict[str, str]) -> bytes:
    """A google.protobuf.Struct of string values (node metadata)."""
    out = b""
    for key, value in values.items():
        entry = pw.field_string(1, key) + pw.field_bytes(2, pw.field_string(3, value))
        out += pw.field_bytes(1, entry)
    return out


def discovery_request(type_url: str, node_id: str, metadata: dict[str, str],
                      resource_names: tuple[str, ...] = (), response_nonce: str = "") -> bytes:
    """An envoy.service.discovery.v3.DiscoveryRequest."""
    node = pw.field_string(1, node_id) + pw.field_bytes(3, struct_of(metadata))
    out = pw.field_bytes(2, node)
    for name in resource_names:
        out += pw.field_bytes(3, name.encode())
    return out + pw.field_string(4, type_url) + pw.field_string(5, response_nonce)


@dataclass(frozen=True)
class AnyMessage:
    type_url: str
    value: bytes


@dataclass(frozen=True)
class DiscoveryResponse:
    version_info: str = ""
    type_url: str = ""
    nonce: str = ""
    resources: tuple[AnyMessage, ...] = ()
    control_plane: str = ""  # ControlPlane.identifier: istiod's JSON {"Component","ID",...}


def _any(data: bytes) -> AnyMessage:
    type_url, value = "", b""
    for number, _, v in pw.fields(data):
        if number == 1:
            type_url = pw.text(v)
        elif number == 2 and isinstance(v, bytes):
            value = v
    return AnyMessage(type_url, value)


def discovery_response(data: bytes) -> DiscoveryResponse:
    """Decode an envoy.service.discovery.v3.DiscoveryResponse."""
    version = type_url = nonce = identifier = ""
    resources = []
    for number, _, v in pw.fields(data):
        if number == 1:
            version = pw.text(v)
        elif number == 2:
            resources.append(_any(_bytes(v)))
        elif number == 4:
            type_url = pw.text(v)
        elif number == 5:
            nonce = pw.text(v)
        elif number == 6:
            for n, _, w in pw.fields(_bytes(v)):
                if n == 1:
                    identifier = pw.text(w)
    return DiscoveryResponse(version, type_url, nonce, tuple(resources), identifier)


@dataclass(frozen=True)
class XdsConfigStatus:
    """One GenericXdsConfig of a ClientConfig: a type's sync state."""

    type_url: str
    config_status: str  # SYNCED, NOT_SENT, STALE, ERROR, UNKNOWN
    last_updated: datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class ClientConfig:
    node_id: str
    metadata: dict[str, str] = field(default_factory=dict)
    configs: tuple[XdsConfigStatus, ...] = ()


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise DecodeError("an embedded message with a numeric wire type")
    return value


def _timestamp(data: bytes) -> datetime | None:
    seconds = nanos = 0
    for number, _, v in pw.fields(data):
        if number == 1 and isinstance(v, int):
            seconds = pw.signed64(v)
        elif number == 2 and isinstance(v, int):
            nanos = v
    if seconds <= _GO_ZERO_SECONDS:
        return None
    return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)


def _struct_strings(data: bytes) -> dict[str, str]:
    """The string (and number/bool, as text) values of a google.protobuf.Struct."""
    out = {}
    for number, _, entry in pw.fields(data):
        if number != 1:
            continue
        key, value = "", None
        for n, _, v in pw.fields(_bytes(entry)):
            if n == 1:
                key = pw.text(v)
            elif n == 2:
                for kind, wire, w in pw.fields(_bytes(v)):
                    if kind == 3:
                        value = pw.text(w)
                    elif kind == 4:
                        value = "true" if w else "false"
        if key and value is not None:
            out[key] = value
    return out


def _generic_xds_config(data: bytes) -> XdsConfigStatus:
    type_url, status, updated, error = "", 0, None, None
    for number, _, v in pw.fields(data):
        if number == 1:
            type_url = pw.text(v)
        elif number == 5:
            updated = _timestamp(_bytes(v))
        elif number == 6 and isinstance(v, int):
            status = v
        elif number == 8:  # envoy.admin.v3.UpdateFailureState: details = 3
            for n, _, w in pw.fields(_bytes(v)):
                if n == 3:
                    error = pw.text(w) or None
    return XdsConfigStatus(type_url, CONFIG_STATUS.get(status, "UNKNOWN"), updated, error)


def client_config(data: bytes) -> ClientConfig:
    """Decode an envoy.service.status.v3.ClientConfig (node and generic_xds_configs)."""
    node_id, metadata, configs = "", {}, []
    for number, _, v in pw.fields(data):
        if number == 1:
            for n, _, w in pw.fields(_bytes(v)):
                if n == 1:
                    node_id = pw.text(w)
                elif n == 3:
                    metadata = _struct_strings(_bytes(w))
        elif number == 3:
            configs.append(_generic_xds_config(_bytes(v)))
    return ClientConfig(node_id, metadata, tuple(configs))
