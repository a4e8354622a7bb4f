"""Objects with fields of the wrong type (a string where a list belongs, a list for a mapping,
null) – from a hand-edited file or a cluster with a CRD that does not validate – never make an
analyzer fail: every analyzer runs on every mutation of every field of realistic objects."""

from __future__ import annotations

import copy
import textwrap

import yaml

from kubectl_mesh.analyze.analyzers import all_analyzers
from kubectl_mesh.analyze.command import analyze
from kubectl_mesh.analyze.resources import KINDS, Resource, Store
from tests.analyze.test_analyzers import DR, GW, GW_POD, NS, POD_V1, SE, SVC, pa, vs

OBJECTS = [d for d in yaml.safe_load_all(textwrap.dedent(
    NS + "---\n" + SVC + POD_V1 + DR + GW + GW_POD + SE
    + vs("- destination: {host: reviews, subset: v1, port: {number: 80}}",
         "\n  gateways: [gw, mesh]").replace("  http:\n  - route:",
                                             "  http:\n  - mirror: {host: reviews}\n    route:")
    + DR.replace("subsets:", "trafficPolicy: {tls: {mode: DISABLE}}\n  subsets:")
    + pa("s", "ns", "STRICT", "\n  selector: {matchLabels: {app: reviews}}"))) if d]
WRONG = ["text", 7, None, [], ["x", {"a": 1}], {"k": "v"}, True]


def paths(value, prefix=()):
    """Every path to a value inside `value` (mapping keys and list indexes)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from paths(item, prefix + (i,))


def replaced(obj, path, new):
    obj = copy.deepcopy(obj)
    target = obj
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return obj


def store_of(objects) -> Store:
    store = Store()
    for obj in objects:
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        namespaced = KINDS[obj["kind"]][2]
        store.add(Resource(obj["kind"], str(meta.get("namespace") or "ns") if namespaced else "",
                           str(meta.get("name")), obj))
    return store


def test_every_analyzer_survives_every_wrong_type_in_every_field():
    analyzers = list(all_analyzers())
    baseline = analyze(store_of(OBJECTS), analyzers, None)
    runs = 0
    for index, obj in enumerate(OBJECTS):
        for path in paths(obj):
            if len(path) < 1 or path[0] in ("apiVersion", "kind") or path == ("metadata", "name"):
                continue
            for wrong in WRONG:
                objects = list(OBJECTS)
                objects[index] = replaced(obj, path, wrong)
                analyze(store_of(objects), analyzers, None)  # must not raise
                runs += 1
    assert runs > 500
    assert baseline  # the objects are realistic enough to make analyzers report something
