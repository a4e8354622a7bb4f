"""Small helpers shared by the per-resource parsers: type URLs, addresses, Istio metadata."""

from __future__ import annotations

from typing import Any, NamedTuple

from kubectl_mesh.configdump.shape import text


class Table(NamedTuple):
    """What a table builder returns: header cells, rows of string cells, and the selected raw
    Envoy objects (what `-o json|yaml` prints)."""

    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    data: list
    gap: int = 5  # spaces between columns, as istioctl's tabwriter (listeners use 1)


def type_name(type_url: str | None) -> str:
    """`type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster` →
    `ClustersConfigDump.DynamicCluster` (v2 and v3 URLs give the same name)."""
    if not type_url or not isinstance(type_url, str):
        return ""
    parts = type_url.rsplit("/", 1)[-1].split(".")
    for i, part in enumerate(parts):
        if part[:1].isupper():
            return ".".join(parts[i:])
    return parts[-1]


def socket_address(address: dict | None) -> tuple[str, int | None]:
    """An Envoy `Address` → (host or pipe path or internal listener name, port or None)."""
    if not address:
        return "", None
    sock = address.get("socket_address")
    if sock is not None:
        port = sock.get("port_value")
        return text(sock, "address"), int(port) if port is not None else None
    pipe = address.get("pipe")
    if pipe is not None:
        return text(pipe, "path"), None
    internal = address.get("envoy_internal_address")
    if internal is not None:
        # istioctl's form (writer/envoy/configdump/endpoint.go retrieveEndpointAddresses):
        # envoy://<server listener>/<endpoint id>, the id being the tunnelled destination.
        endpoint_id = text(internal, "endpoint_id")
        return ("envoy://" + text(internal, "server_listener_name")
                + (f"/{endpoint_id}" if endpoint_id else "")), None
    return "", None


def istio_config_ref(metadata: dict | None) -> str:
    """`metadata.filter_metadata.istio.config` → `name.namespace` of the Istio object, else ''.

    The value is a path like `/apis/networking.istio.io/v1alpha3/namespaces/ns/virtual-service/x`.
    """
    path = ((metadata or {}).get("filter_metadata") or {}).get("istio", {}).get("config")
    if not isinstance(path, str) or not path:
        return ""
    pieces = path.split("/")
    if len(pieces) == 8 and pieces[1] == "apis" and pieces[4] == "namespaces":
        return f"{pieces[7]}.{pieces[5]}"
    return "<unknown>"


def typed_config(obj: dict) -> dict:
    """The config of a filter or extension: v3 `typed_config` (unwrapping a TypedStruct's
    `value`), or the v2 `config` Struct; {} if neither."""
    config = obj.get("typed_config")
    if isinstance(config, dict):
        if type_name(config.get("@type")) == "TypedStruct" and isinstance(config.get("value"), dict):
            return config["value"]
        return config
    legacy = obj.get("config")
    if isinstance(legacy, dict):
        # v1-era filters nest the real config under `value` next to `deprecated_v1: true`.
        if legacy.get("deprecated_v1") and isinstance(legacy.get("value"), dict):
            return legacy["value"]
        return legacy
    return {}


def as_int(value: Any) -> int | None:
    """protojson writes 64-bit ints (and wrapped UInt32Value `{value: n}`) in several shapes."""
    if isinstance(value, dict):
        value = value.get("value")
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
