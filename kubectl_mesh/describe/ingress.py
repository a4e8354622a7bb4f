"""Ingress exposure: which Gateway and VirtualService expose a Service, through which gateway
pods and Service, and the URL to reach it there (istioctl's printIngressInfo and
printIngressService: the gateway Service's `http`/`http2` ports, its load balancer address or
the gateway pod's host IP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from kubectl_mesh.analyze.analyzers.hosts import matches as host_matches
from kubectl_mesh.analyze.resources import Resource, as_dict, as_list, selector_matches
from kubectl_mesh.describe.objects import MESH_GATEWAY, MeshObjects, service_fqdn

URL_PORT_NAMES = ("http2", "http")  # the ports istioctl shows (portsToShow)


@dataclass
class Exposure:
    """One Gateway a VirtualService to the service is bound to, and where it runs."""

    vs: Resource
    service: Resource
    reference: str  # as the VirtualService writes it
    namespace: str
    name: str
    gateway: Optional[Resource]
    pods: list[Resource] = field(default_factory=list)  # Running pods the gateway selects
    services: list[Resource] = field(default_factory=list)  # Services of those pods

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def exposures(mesh: MeshObjects, services: list[Resource]) -> list[Exposure]:
    """Every (VirtualService, Gateway) pair exposing one of `services` through a gateway."""
    out = []
    for svc in services:
        for vs in mesh.virtual_services_to(service_fqdn(svc)):
            for reference in [g for g in as_list(vs.spec.get("gateways")) if isinstance(g, str)]:
                if reference in ("", MESH_GATEWAY):
                    continue
                namespace, name, gateway = mesh.gateway(reference, vs.namespace)
                exposure = Exposure(vs, svc, reference, namespace, name, gateway)
                selector = {str(k): str(v) for k, v in
                            as_dict(gateway.spec.get("selector") if gateway else None).items()}
                if gateway is not None and selector:
                    # PILOT_SCOPE_GATEWAY_TO_NAMESPACE off (the default): pods in any namespace
                    exposure.pods = [p for p in mesh.store.of("Pod")
                                     if as_dict(p.obj.get("status")).get("phase") == "Running"
                                     and selector_matches(selector, p.labels)]
                    exposure.pods.sort(key=lambda p: (p.namespace, p.name))
                    exposure.services = [
                        s for ns in sorted({p.namespace for p in exposure.pods})
                        for s in mesh.services_in(ns)
                        if as_dict(s.spec.get("selector")) and any(selector_matches(
                            {str(k): str(v) for k, v in as_dict(s.spec.get("selector")).items()},
                            p.labels) for p in exposure.pods if p.namespace == ns)]
                out.append(exposure)
    return out


def address(service: Resource, pods: list[Resource]) -> str:
    """getIngressIP: the load balancer's IP (or host name), else the first pod's host IP."""
    for ingress in as_list(as_dict(as_dict(service.obj.get("status")).get("loadBalancer"))
                           .get("ingress")):
        ingress = as_dict(ingress)
        if ingress.get("ip") or ingress.get("hostname"):
            return str(ingress.get("ip") or ingress.get("hostname"))
    for pod in pods:
        host_ip = as_dict(pod.obj.get("status")).get("hostIP")
        if host_ip:
            return str(host_ip)
    return "unknown"


def urls(service: Resource, pods: list[Resource]) -> list[str]:
    """`http://ADDRESS[:port]` for the gateway Service's http/http2 ports."""
    ip = address(service, [p for p in pods if p.namespace == service.namespace])
    out = []
    for port in as_list(service.spec.get("ports")):
        port = as_dict(port)
        if (port.get("protocol") or "TCP") != "TCP" or port.get("name") not in URL_PORT_NAMES:
            continue
        number = port.get("port")
        out.append(f"http://{ip}" + ("" if number == 80 else f":{number}"))
    return out


def gateway_hosts(exposure: Exposure) -> list[str]:
    """The VirtualService's hosts that a server of the Gateway accepts (`ns/host` forms
    compared by host)."""
    if exposure.gateway is None:
        return []
    accepted = []
    for server in as_list(exposure.gateway.spec.get("servers")):
        for host in as_list(as_dict(server).get("hosts")):
            if isinstance(host, str):
                accepted.append(host.rpartition("/")[2])
    return [h for h in as_list(exposure.vs.spec.get("hosts"))
            if isinstance(h, str) and any(host_matches(h, a) for a in accepted)]


def curl_hint(url: str, hosts: list[str]) -> str:
    host = next((h for h in hosts if not h.startswith("*")), None)
    return f'curl -H "Host: {host}" {url}/' if host else f"curl {url}/"
