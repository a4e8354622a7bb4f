"""Target parsing, label selectors and Pod facts (no cluster needed)."""

from __future__ import annotations

import pytest

from kubectl_mesh.errors import ExitCode, UsageError
from kubectl_mesh.kube.pods import Pod
from kubectl_mesh.kube.targets import Target, label_selector_string, parse_target


@pytest.mark.parametrize("text, kind, name, namespace, typed", [
    ("catalog-5c99-ed8af", "pod", "catalog-5c99-ed8af", None, False),
    ("pod/catalog-5c99-ed8af", "pod", "catalog-5c99-ed8af", None, True),
    ("po/x.ns", "pod", "x", "ns", True),
    ("catalog.istioinaction", "pod", "catalog", "istioinaction", False),
    ("deploy/catalog", "deployment", "catalog", None, True),
    ("deployment/catalog.istioinaction", "deployment", "catalog", "istioinaction", True),
    ("deployments/catalog", "deployment", "catalog", None, True),
    ("Deploy/catalog", "deployment", "catalog", None, True),
    ("sts/db", "statefulset", "db", None, True),
    ("statefulset/db.data", "statefulset", "db", "data", True),
    ("ds/agent", "daemonset", "agent", None, True),
    ("daemonset/agent", "daemonset", "agent", None, True),
    ("rs/catalog-5c99", "replicaset", "catalog-5c99", None, True),
    ("replicaset/catalog-5c99", "replicaset", "catalog-5c99", None, True),
    ("svc/catalog", "service", "catalog", None, True),
    ("service/istiod.istio-system", "service", "istiod", "istio-system", True),
    # names may hold dots: the LAST dot separates the namespace (istioctl's rule)
    ("pod/web.v1.prod", "pod", "web.v1", "prod", True),
], ids=lambda v: str(v))
def test_parse(text, kind, name, namespace, typed):
    target = Target.parse(text)
    assert (target.kind, target.name, target.namespace, target.typed) == (kind, name, namespace, typed)


def test_dotted_name_keeps_the_whole_text():
    target = Target.parse("deploy/web.v1.prod")
    assert target.dotted_name == "web.v1.prod"
    assert str(target) == "deployment/web.v1.prod"


@pytest.mark.parametrize("text, message", [
    ("job/x", "unsupported target type 'job'"),
    ("deploy/", "invalid target"),
    ("", "invalid target"),
    ("Catalog", "invalid target"),
    ("deploy/a/b", "invalid target"),
    (".ns", "invalid target"),
    ("catalog.", "invalid target"),
], ids=["unknown-type", "empty-name", "empty", "upper-case", "two-slashes", "no-name", "trailing-dot"])
def test_parse_errors(text, message):
    with pytest.raises(UsageError, match=message) as exc:
        Target.parse(text)
    assert exc.value.exit_code == ExitCode.USAGE


def test_parse_target_target_or_selector():
    assert parse_target(None, "app=x") == Target(kind="selector", selector="app=x")
    assert parse_target("deploy/x", None).kind == "deployment"
    with pytest.raises(UsageError, match="not both"):
        parse_target("deploy/x", "app=x")
    with pytest.raises(UsageError, match="a target is required"):
        parse_target(None, None)


def test_label_selector_string():
    sel = {"matchLabels": {"version": "v1", "app": "catalog"},
           "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                                {"key": "owner", "operator": "Exists"},
                                {"key": "legacy", "operator": "DoesNotExist"}]}
    assert label_selector_string(sel) == \
        "app=catalog,version=v1,tier in (a,b),env notin (dev),owner,!legacy"


def _pod_json(**over):
    obj = {
        "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "x-1", "uid": "u",
                                          "controller": True}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "app"}, {"name": "istio-proxy",
                                                                    "args": ["proxy", "sidecar"]}]},
        "status": {"phase": "Running", "podIP": "10.0.0.5",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }
    for key, value in over.items():
        obj[key] = {**obj[key], **value}
    return obj


def test_pod_from_json():
    pod = Pod.from_json(_pod_json())
    assert (pod.name, pod.namespace, pod.ip, pod.containers, pod.ready, pod.node, pod.owner,
            pod.phase, pod.proxy_type, pod.ref) == (
        "p", "ns", "10.0.0.5", ("app", "istio-proxy"), True, "n1", "ReplicaSet/x-1",
        "Running", "sidecar", "p.ns")
    assert pod.labels["app"] == "x" and pod.has_proxy
    hash(pod)  # frozen and hashable despite the labels mapping


def test_pod_gateway_and_native_sidecar():
    gw = Pod.from_json(_pod_json(spec={"containers": [{"name": "istio-proxy",
                                                       "args": ["proxy", "router"]}]}))
    assert gw.proxy_type == "router" and gw.containers == ("istio-proxy",)
    native = Pod.from_json(_pod_json(spec={
        "containers": [{"name": "app"}],
        "initContainers": [{"name": "istio-validation"},
                           {"name": "istio-proxy", "restartPolicy": "Always"}]}))
    assert native.has_proxy and native.containers == ("app", "istio-proxy")


def test_pod_not_ready_and_pending():
    pod = Pod.from_json(_pod_json(status={"phase": "Pending", "conditions": [], "podIP": None}))
    assert (pod.phase, pod.ready, pod.ip) == ("Pending", False, "")
