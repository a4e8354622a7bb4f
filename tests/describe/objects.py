"""Minimal cluster objects for the describe units: YAML in, a described report and its text
out, without a cluster (the findings are analyze's, run on the same objects)."""

from __future__ import annotations

from typing import Optional

import yaml

from kubectl_mesh.analyze.resources import Resource, Store
from kubectl_mesh.describe.command import _findings
from kubectl_mesh.describe.objects import NOT_READ, MeshObjects
from kubectl_mesh.describe.render import render
from kubectl_mesh.describe.report import (Context, describe_pod_report,
                                          describe_service_report)

CLUSTER_SCOPED = {"Namespace"}


def store_of(text: str) -> Store:
    store = Store()
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        meta = doc["metadata"]
        namespace = "" if doc["kind"] in CLUSTER_SCOPED else meta.get("namespace", "default")
        meta.setdefault("namespace", namespace) if namespace else None
        store.add(Resource(doc["kind"], namespace, meta["name"], doc))
    return store


def pod(name: str, labels: dict, *, namespace: str = "default", sidecar: bool = True,
        ports: tuple = (("app", 8080, "http"),), phase: str = "Running", extra: str = "",
        run_as_user: Optional[int] = None, ready: bool = True) -> str:
    """A pod's YAML: app containers with (container, port, port name), an istio-proxy."""
    containers = {}
    for container, number, port_name in ports:
        containers.setdefault(container, []).append(
            {"containerPort": number, **({"name": port_name} if port_name else {})})
    spec = [{"name": c, "image": "x", "ports": p} for c, p in containers.items()]
    if run_as_user is not None:
        spec[0]["securityContext"] = {"runAsUser": run_as_user}
    statuses = [{"name": c, "ready": ready} for c in containers]
    if sidecar:
        spec.append({"name": "istio-proxy", "image": "proxyv2", "args": ["proxy", "sidecar"]})
        statuses.append({"name": "istio-proxy", "ready": True})
    annotations = {"sidecar.istio.io/status": '{"containers":["istio-proxy"],"revision":'
                                              '"default"}'} if sidecar else {}
    doc = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "labels": labels,
                        "annotations": annotations, "uid": f"uid-{name}"},
           "spec": {"containers": spec},
           "status": {"phase": phase, "hostIP": "10.0.0.9", "containerStatuses": statuses}}
    return yaml.safe_dump(doc) + extra


def describe(text: str, pod_name: Optional[str] = None, *, namespace: str = "default",
             service: Optional[str] = None, proxies: Optional[dict] = None,
             refused: tuple = (), root: str = "istio-system",
             where: Optional[str] = None) -> tuple[dict, str]:
    """(report, text) of `describe pod POD_NAME` or `describe service SERVICE` in namespace
    `where` (default: `namespace`, the user's current one)."""
    where = where or namespace
    store = store_of(text)
    mesh = MeshObjects(store, refused=refused, root_namespace=root)
    ctx = Context(mesh, namespace, findings=_findings(store, set(refused) | NOT_READ),
                  proxies=proxies)
    if service is not None:
        report = describe_service_report(ctx, store.get("Service", where, service))
    else:
        report = describe_pod_report(ctx, store.get("Pod", where, pod_name))
    return report, render(report)
