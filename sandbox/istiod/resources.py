"""Proto-JSON dicts ↔ protobuf messages, and content versions."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict

from google.protobuf import any_pb2, json_format

# Imported for their side effect: registering the types that typed_config Anys refer to.
from envoy.extensions.access_loggers.file.v3 import file_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2  # noqa: F401
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (  # noqa: F401
    http_connection_manager_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2  # noqa: F401
from envoy.extensions.request_id.uuid.v3 import uuid_pb2  # noqa: F401
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from envoy.admin.v3 import config_dump_pb2  # noqa: F401
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

from sandbox.istiod.translate import ENDPOINT_TYPE
from sandbox.istiod.clusters import CLUSTER_TYPE
from sandbox.istiod.listeners import LISTENER_TYPE
from sandbox.istiod.routes import ROUTE_TYPE

MESSAGES = {
    CLUSTER_TYPE: cluster_pb2.Cluster,
    ENDPOINT_TYPE: endpoint_pb2.ClusterLoadAssignment,
    LISTENER_TYPE: listener_pb2.Listener,
    ROUTE_TYPE: route_pb2.RouteConfiguration,
}


class Packer:
    """`to_any` with memory: a resource already converted (same type, same content) is not
    parsed again. Every push regenerates every proxy's resources, and at thousands of virtual
    hosts `json_format.ParseDict` (pure Python) was most of istiod's CPU, although most pushes
    change few resources; the C JSON encoder gives the content key for a fraction of that.
    Holds at most `limit` entries, the least recently used dropped first."""

    def __init__(self, limit: int = 20000):
        self._limit = limit
        self._cache: OrderedDict[tuple[str, str], any_pb2.Any] = OrderedDict()
        self._lock = threading.Lock()

    def to_any(self, type_url: str, resource: dict) -> any_pb2.Any:
        key = (type_url, json.dumps(resource, sort_keys=True, separators=(",", ":")))
        with self._lock:
            packed = self._cache.get(key)
            if packed is not None:
                self._cache.move_to_end(key)
                return packed
        packed = to_any(type_url, resource)
        with self._lock:
            self._cache[key] = packed
            while len(self._cache) > self._limit:
                self._cache.popitem(last=False)
        return packed


def to_message(type_url: str, resource: dict):
    """Parse a proto-JSON dict into its Envoy message (raises json_format.ParseError)."""
    return json_format.ParseDict(resource, MESSAGES[type_url]())


def to_any(type_url: str, resource: dict) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(to_message(type_url, resource))
    return packed


def to_json(message) -> dict:
    """Envoy admin style JSON (proto field names), as in Envoy's own /config_dump."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def normalized(type_url: str, resource: dict) -> dict:
    """The dict as Envoy would print it (`10s`, enum names, defaults dropped) with `@type`."""
    return {"@type": type_url, **to_json(to_message(type_url, resource))}


def digest_of(packed: list[any_pb2.Any]) -> str:
    """A content hash: a type is pushed to a proxy again only when it changes."""
    digest = hashlib.sha256()
    for item in packed:
        digest.update(item.SerializeToString(deterministic=True))
    return digest.hexdigest()[:16]
