"""Deployment analyzers (istio/pkg/config/analysis/analyzers/deployment/): the Services that
select a mesh Deployment's pods using one port with different protocols (IST0116) or one
targetPort for different ports (IST0137), and application containers running as the proxy's
UID 1337 (IST0144, pod.go, Pods and Deployments)."""

from __future__ import annotations

from typing import Iterator, Optional

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import (Resource, Store, as_dict, as_list, scalar,
                                             selector_matches)

PROXY_UID = 1337
# containers the UID check leaves out (util.IstioProxyName, util.IstioOperator)
PROXY_CONTAINERS = ("istio-proxy", "istio-operator")
INJECT = "sidecar.istio.io/inject"
WAYPOINT = ("gateway.istio.io/managed", "istio.io-mesh-controller")


def _template(deploy: Resource) -> dict:
    return as_dict(deploy.spec.get("template"))


def _string_map(value) -> dict:
    return {str(k): str(v) for k, v in as_dict(value).items()}


def in_mesh(deploy: Resource, namespaces: dict[str, Resource]) -> bool:
    """util.DeploymentInMesh (analyzers/util/in_mesh.go): an istio-proxy container with an
    image, else the template's inject label, else its annotation, else the namespace's
    istio-injection label."""
    template = _template(deploy)
    containers = [as_dict(c) for c in as_list(as_dict(template.get("spec")).get("containers"))]
    if any(c.get("name") == "istio-proxy" and c.get("image") for c in containers):
        return True
    metadata = as_dict(template.get("metadata"))
    for source in (_string_map(metadata.get("labels")), _string_map(metadata.get("annotations"))):
        if INJECT in source:
            return source[INJECT] == "true"
    namespace = namespaces.get(deploy.namespace)
    if namespace is not None:
        return namespace.labels.get("istio-injection") == "enabled"
    return False


def service_associations(store: Store) -> Iterator[Message]:
    """deployment.MultiServiceAnalyzer (deployment/services.go)."""
    namespaces = {ns.name: ns for ns in store.of("Namespace")}
    services_by_ns: dict[str, list[Resource]] = {}
    for svc in store.of("Service"):
        services_by_ns.setdefault(svc.namespace, []).append(svc)
    for deploy in store.of("Deployment"):
        if deploy.labels.get(WAYPOINT[0]) == WAYPOINT[1] or not in_mesh(deploy, namespaces):
            continue
        labels = _string_map(as_dict(_template(deploy).get("metadata")).get("labels"))
        matching = []
        for svc in services_by_ns.get(deploy.namespace, []):
            selector = _string_map(svc.spec.get("selector"))
            if selector and selector_matches(selector, labels):
                matching.append(svc)
        yield from _protocol_conflicts(deploy, matching)
        yield from _target_port_conflicts(deploy, matching)


def _ports(svc: Resource) -> Iterator[dict]:
    for port in as_list(svc.spec.get("ports")):
        if isinstance(port, dict) and isinstance(port.get("port"), int):
            yield port


def _protocol_conflicts(deploy: Resource, services: list[Resource]) -> Iterator[Message]:
    by_port: dict[int, dict[str, list[str]]] = {}
    for svc in services:
        for port in _ports(svc):
            protocol = str(port.get("protocol") or "TCP")
            by_port.setdefault(port["port"], {}).setdefault(protocol, []).append(svc.full_name)
    for number, protocols in by_port.items():
        if len(protocols) > 1:
            names = sorted(n for found in protocols.values() for n in found)
            yield Message(msg.DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES,
                          (deploy.name, number, names), deploy, deploy.line_of("metadata", "name"))


def _target_port_conflicts(deploy: Resource, services: list[Resource]) -> Iterator[Message]:
    by_target: dict[str, dict[int, str]] = {}
    for svc in services:
        for port in _ports(svc):
            target = _target_text(port.get("targetPort"))
            if target in ("", "0"):
                target = str(port["port"])
            by_target.setdefault(target, {})[port["port"]] = svc.full_name
    for target, ports in by_target.items():
        if len(ports) > 1:
            yield Message(msg.DEPLOYMENT_CONFLICTING_PORTS,
                          (deploy.name, sorted(ports.values()), target, sorted(ports)), deploy,
                          deploy.line_of("metadata", "name"))


def _target_text(value) -> str:
    """intstr.IntOrString.String(): the number or the name; empty when unset."""
    value = scalar(value)
    return "" if value is None else str(value)


def application_uid(store: Store) -> Iterator[Message]:
    """applicationUID.Analyzer (deployment/pod.go): pod-level runAsUser 1337, and each
    application container's, one message per finding; the control plane (an `istio` label,
    or release=istio) is left out."""
    for kind, spec_of in (("Pod", lambda r: r.spec),
                          ("Deployment", lambda r: as_dict(_template(r).get("spec")))):
        for res in store.of(kind):
            if "istio" in res.labels or res.labels.get("release") == "istio":
                continue
            spec = spec_of(res)
            if _run_as(spec) == PROXY_UID:
                yield Message(msg.INVALID_APPLICATION_UID, (), res)
            for container in as_list(spec.get("containers")):
                container = as_dict(container)
                if container.get("name") not in PROXY_CONTAINERS \
                        and _run_as(container) == PROXY_UID:
                    yield Message(msg.INVALID_APPLICATION_UID, (), res)


def _run_as(holder: dict) -> Optional[int]:
    value = as_dict(holder.get("securityContext")).get("runAsUser")
    return value if isinstance(value, int) else None
