"""istiod's binary config dump sections (the `istio.io/debug/config_dump` answer) written as
istiod's JSON: protojson names, Go's number spelling, only the sections --diff compares, and
a type no installed proto describes named in the error."""

from __future__ import annotations

import json

import pytest
from envoy.admin.v3 import config_dump_pb2, config_dump_shared_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import any_pb2

from kubectl_mesh.xds import dumpjson
from kubectl_mesh.xds.messages import AnyMessage


def _any(message, type_url: str | None = None) -> AnyMessage:
    packed = any_pb2.Any()
    packed.Pack(message)
    return AnyMessage(type_url or packed.type_url, packed.value)


def test_sections_are_written_as_istiods_protojson():
    cluster = cluster_pb2.Cluster(name="outbound|80||a.b.svc.cluster.local",
                                  lb_policy=cluster_pb2.Cluster.RING_HASH)
    cluster.common_lb_config.healthy_panic_threshold.value = 100.0
    clusters = config_dump_shared_pb2.ClustersConfigDump(version_info="v1")
    clusters.dynamic_active_clusters.add().cluster.Pack(cluster)
    route = route_pb2.RouteConfiguration(name="80")
    route.virtual_hosts.add(name="a", domains=["*"])
    routes = config_dump_shared_pb2.RoutesConfigDump()
    routes.dynamic_route_configs.add(version_info="v1").route_config.Pack(route)
    dump = dumpjson.config_dump([_any(config_dump_pb2.BootstrapConfigDump()), _any(clusters),
                                 _any(config_dump_pb2.SecretsConfigDump()), _any(routes)])
    kinds = [c["@type"].rsplit(".", 1)[1] for c in dump["configs"]]
    assert kinds == ["ClustersConfigDump", "RoutesConfigDump"]  # what --diff compares
    active = dump["configs"][0]["dynamicActiveClusters"][0]["cluster"]
    assert active["lbPolicy"] == "RING_HASH" and active["name"].startswith("outbound|80")
    # Go's protojson writes an integral double without a fraction; Python's would say 100.0
    assert json.dumps(active["commonLbConfig"]) == '{"healthyPanicThreshold": {"value": 100}}'
    assert dump["configs"][1]["dynamicRouteConfigs"][0]["routeConfig"]["virtualHosts"] == [
        {"name": "a", "domains": ["*"]}]


def test_fractions_stay_fractions():
    assert dumpjson._go_numbers({"a": [0.5, 1.0, 1e21, 3]}) == {"a": [0.5, 1, 1e21, 3]}


def test_a_type_no_proto_describes_is_named():
    cluster = cluster_pb2.Cluster(name="c")
    cluster.typed_extension_protocol_options["x"].CopyFrom(
        any_pb2.Any(type_url="type.googleapis.com/io.example.v1.Unknown", value=b""))
    clusters = config_dump_shared_pb2.ClustersConfigDump()
    clusters.dynamic_active_clusters.add().cluster.Pack(cluster)
    with pytest.raises(dumpjson.UnknownType, match="io.example.v1.Unknown, which no installed"):
        dumpjson.config_dump([_any(clusters)])

