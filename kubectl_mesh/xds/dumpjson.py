"""istiod's config dump sections, as its xDS debug type sends them, in istiod's JSON.

`istio.io/debug/config_dump` with one resource name (`pod.namespace`) is answered by
StatusGen (pilot/pkg/xds/statusgen.go `debugConfigDump`) with the sections of
`connectionConfigDump(conn, false)` as binary protobuf `Any`s (`AnyToUnnamedResources`):
ClustersConfigDump, ListenersConfigDump, RoutesConfigDump, ... – the same dump
`/debug/config_dump?proxyID=` writes as JSON. Their fields (an Envoy Cluster, Listener,
RouteConfiguration and the extensions in their `typed_config`s) can only be named with
Envoy's proto schemas: those of the `xds-protos` package (with `protobuf`), an optional
extra (`pip install 'kubectl-mesh[xds]'`, 120 MB of generated modules). Each section is
written as protojson without original names, as istiod's `writeJSON` does
(pkg/util/protomarshal): camelCase keys, defaults left out.

The modules of types met inside an `Any` are imported on demand: every `*_pb2` module of
the type's proto package (`envoy.extensions.filters.network.http_connection_manager.v3`).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Iterable

from kubectl_mesh.xds.messages import AnyMessage

INSTALL_HINT = "pip install 'kubectl-mesh[xds]'"
# the sections `sync --diff` compares (sync/diff.py); the others are not decoded
SECTIONS = ("envoy.admin.v3.ClustersConfigDump", "envoy.admin.v3.ListenersConfigDump",
            "envoy.admin.v3.RoutesConfigDump")
_MAX_IMPORTS = 200  # proto packages imported for one dump; more means a loop


class ProtosMissing(Exception):
    """The Envoy API protos (xds-protos) are not installed."""


class UnknownType(Exception):
    """The dump holds a type no installed proto package describes."""


def config_dump(resources: Iterable[AnyMessage]) -> dict[str, Any]:
    """`{"configs": [section, ...]}` of the sections `sync --diff` compares, in istiod's JSON
    spelling; ProtosMissing or UnknownType when they cannot be named."""
    try:
        from google.protobuf import any_pb2, json_format
        from envoy.admin.v3 import config_dump_shared_pb2  # noqa: F401 - registers SECTIONS
    except ImportError as e:
        raise ProtosMissing(f"naming the config dump's fields needs the Envoy API protos "
                            f"({INSTALL_HINT})") from e
    configs = []
    for resource in resources:
        if resource.type_url.rpartition("/")[2] not in SECTIONS:
            continue
        packed = any_pb2.Any(type_url=resource.type_url, value=resource.value)
        configs.append(_go_numbers(_to_json(packed, json_format)))
    return {"configs": configs}


def _go_numbers(value: Any) -> Any:
    """Doubles as Go's protojson writes them: an integral value without a fraction (`100`,
    not Python's `100.0`), below 1e21 where Go switches to an exponent (google.golang.org/
    protobuf internal/encoding/json/encode.go `appendFloat`); Envoy's admin JSON writes
    them alike."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {key: _go_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_go_numbers(item) for item in value]
    return value


def _to_json(packed, json_format) -> dict[str, Any]:
    tried: set[str] = set()
    while True:
        try:
            return json_format.MessageToDict(packed, preserving_proto_field_name=False)
        except TypeError as e:  # json_format: "Can not find message descriptor by type_url"
            type_url = str(e).rpartition("type_url: ")[2]
            package = type_url.rpartition("/")[2].rpartition(".")[0]
            if not type_url or package in tried or len(tried) >= _MAX_IMPORTS \
                    or not _import_package(package):
                raise UnknownType(f"the config dump holds {type_url or e}, which no installed "
                                  "proto package describes") from e
            tried.add(package)


def _import_package(package: str) -> bool:
    """Import every `*_pb2` module of proto package `package`; False if there is none."""
    try:
        module = importlib.import_module(package)
    except (ImportError, ValueError):
        return False
    found = False
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if info.name.endswith("_pb2"):
            importlib.import_module(f"{package}.{info.name}")
            found = True
    return found
