"""A description as plain data (what `-o json` prints and the text is rendered from): the pod,
each Service selecting it with its DestinationRule and VirtualServices, the policies, the
ingress exposure; analyze's findings and the proxies' live config attached where they belong.

The sections and their order are istioctl's `x describe pod` / `x describe service`
(istioctl/pkg/describe/describe.go: podDescribeCmd, svcDescribeCmd, describePodServices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from kubectl_mesh.analyze.analyzers.service import port_protocol
from kubectl_mesh.analyze.resources import Resource, as_dict, as_list
from kubectl_mesh.describe import ingress, live, security, traffic
from kubectl_mesh.describe.objects import MESH_GATEWAY, MeshObjects, service_fqdn
from kubectl_mesh.describe.pod import containers, describe_pod

NO_SERVICE_URL = "https://istio.io/docs/setup/kubernetes/additional-setup/requirements/"


@dataclass
class Context:
    """What every section needs: the objects, how to name them, analyze's findings by object,
    the proxies' config by pod ref (None: not checked)."""

    mesh: MeshObjects
    namespace: str  # the namespace the user is in: objects there are named without it
    findings: dict = field(default_factory=dict)  # (kind, namespace, name) -> [Message]
    proxies: Optional[dict] = None  # pod ref -> live.ProxyConfig

    def kname(self, obj: Resource) -> str:
        """istioctl's kname: `name`, or `name.namespace` outside the current namespace."""
        return obj.name if obj.namespace == self.namespace else f"{obj.name}.{obj.namespace}"

    def findings_of(self, obj: Optional[Resource]) -> list[dict]:
        if obj is None:
            return []
        return [m.as_dict() for m in self.findings.get((obj.kind, obj.namespace, obj.name), [])]

    def proxy(self, pod: Optional[Resource]) -> Optional[live.ProxyConfig]:
        if self.proxies is None or pod is None:
            return None
        return self.proxies.get(f"{pod.name}.{pod.namespace}")

    def exists(self, kind: str) -> Callable[[str], bool]:
        def check(ref: str) -> bool:
            name, _, namespace = ref.rpartition(".")
            return self.mesh.store.get(kind, namespace, name) is not None
        return check


def describe_pod_report(ctx: Context, pod: Resource, ignore_unmeshed: bool = False) -> dict:
    """`describe pod`: the pod, its Services, PeerAuthentication, Sidecar, AuthorizationPolicies
    and ingress exposure."""
    mesh = ctx.mesh
    section = describe_pod(pod, mesh.namespace_labels(pod.namespace), ctx.kname, ignore_unmeshed)
    section["ref"] = ctx.kname(pod)
    section["findings"] = ctx.findings_of(pod)
    proxy = ctx.proxy(pod)
    section["proxy"] = _proxy_state(proxy)
    services = mesh.services_selecting(pod)
    report: dict = {"kind": "pod", "pod": section, "warnings": []}
    if not services and not ignore_unmeshed:
        report["warnings"].append(f"Warning: No Kubernetes Services select pod {ctx.kname(pod)} "
                                  f"(see {NO_SERVICE_URL} )")
    pods_labels = [dict(pod.labels)]
    report["services"] = [service_report(ctx, svc, pod, pods_labels) for svc in services]
    report["peerAuthentication"] = security.peer_authentication(mesh, pod)
    report["sidecar"] = security.sidecar(mesh, pod)
    report["authorizationPolicies"] = security.authorization_policies(mesh, pod)
    report["ingress"] = ingress_report(ctx, services, pods_labels)
    return report


def describe_service_report(ctx: Context, svc: Resource) -> dict:
    """`describe service`: the Service seen from its Istio pods (the first one's proxy is
    checked), and its ingress exposure; or why there is nothing to describe."""
    pods = ctx.mesh.pods_selected_by(svc)
    report: dict = {"kind": "service", "service": {"name": svc.name, "namespace": svc.namespace,
                                                   "pods": [p.name for p in pods]},
                    "warnings": [], "services": [], "ingress": None}
    meshed = istio_pods(ctx, svc, report["warnings"])
    if not meshed:
        report["service"]["noIstioPods"] = True
        if not pods:
            report["warnings"].append(f'Service "{ctx.kname(svc)}" has no pods.')
        else:
            report["warnings"].append(f'Service "{ctx.kname(svc)}" has no Istio pods.  '
                                      f"({len(pods)} pods in service).")
            report["warnings"].append("Use `istioctl kube-inject` or redeploy with Istio automatic "
                                      "sidecar injection.")
        return report
    pods_labels = [dict(p.labels) for p in meshed]
    report["service"]["describedPod"] = meshed[0].name
    report["services"] = [service_report(ctx, svc, meshed[0], pods_labels)]
    report["ingress"] = ingress_report(ctx, [svc], pods_labels)
    return report


def istio_pods(ctx: Context, svc: Resource, warnings: Optional[list] = None) -> list[Resource]:
    """svcDescribeCmd's pods: the Service's Running pods whose istio-proxy is Ready; why the
    others are left out goes to `warnings`, in istioctl's words."""
    meshed = []
    say = warnings.append if warnings is not None else (lambda line: None)
    for pod in ctx.mesh.pods_selected_by(svc):
        status = as_dict(pod.obj.get("status"))
        if status.get("phase") != "Running":
            say(f"   Pod {ctx.kname(pod)} is not Running ({status.get('phase') or 'Pending'})")
            continue
        proxy_status = next((as_dict(c) for c in as_list(status.get("containerStatuses"))
                             + as_list(status.get("initContainerStatuses"))
                             if as_dict(c).get("name") == "istio-proxy"), None)
        if proxy_status is None:
            say(f'Pod {ctx.kname(pod)}: no container "istio-proxy" in pod')
        elif not proxy_status.get("ready"):
            say(f"WARNING: Pod {ctx.kname(pod)} Container istio-proxy NOT READY")
        else:
            meshed.append(pod)
    return meshed


def _proxy_state(proxy: Optional[live.ProxyConfig]) -> dict:
    if proxy is None:
        return {"checked": False}
    return {"checked": proxy.error is None, "ref": proxy.ref, "error": proxy.error}


def service_ports(svc: Resource, pod: Resource) -> list[dict]:
    """printService: each TCP port with its protocol and the pod port it targets
    (controller.FindPort: a named targetPort is looked up in the pod's containers)."""
    out = []
    for port in as_list(svc.spec.get("ports")):
        port = as_dict(port)
        if (port.get("protocol") or "TCP") != "TCP":
            continue  # UDP: not supported by Istio, istioctl leaves it out
        entry = {"name": port.get("name") or "", "port": port.get("port"),
                 "protocol": ("auto-detect" if not port.get("name") and
                              port.get("appProtocol") is None else port_protocol(port)),
                 "targetPort": None, "error": None}
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, int):
            entry["targetPort"] = target
        else:
            entry["targetPort"] = next(
                (p.get("containerPort") for c in containers(pod) for p in as_list(c.get("ports"))
                 if isinstance(p, dict) and p.get("name") == target
                 and (p.get("protocol") or "TCP") == "TCP"), None)
            if entry["targetPort"] is None:
                uid = pod.metadata.get("uid") or ""
                entry["error"] = f"no suitable port for manifest: {uid}"
        out.append(entry)
    return out


def service_report(ctx: Context, svc: Resource, pod: Resource, pods_labels: list[dict]) -> dict:
    """One Service: ports, the DestinationRule that applies, the mesh VirtualServices routing
    to it, each checked against the pod's proxy when it was read."""
    mesh = ctx.mesh
    fqdn = service_fqdn(svc)
    service_pods = [dict(p.labels) for p in mesh.pods_selected_by(svc)]
    ports = service_ports(svc, pod)
    section: dict = {"name": svc.name, "namespace": svc.namespace, "ref": ctx.kname(svc),
                     "host": fqdn, "ports": ports, "findings": ctx.findings_of(svc)}
    dr = mesh.destination_rule_for(fqdn, pod.namespace)
    proxy = ctx.proxy(pod)
    numbers = [p["port"] for p in ports if isinstance(p["port"], int)]
    section["destinationRule"] = _destination_rule(ctx, dr, pods_labels, service_pods, proxy,
                                                   fqdn, numbers)
    matching, other = traffic.subsets(dr, pods_labels)
    empty = traffic.subsets(dr, service_pods)[1]
    section["virtualServices"] = []
    for vs in mesh.virtual_services_to(fqdn):
        gateways = [g for g in as_list(vs.spec.get("gateways")) if isinstance(g, str)]
        if gateways and MESH_GATEWAY not in gateways:
            continue  # bound to gateways only: shown with the ingress exposure
        vs_section = traffic.virtual_service(vs, svc, matching, other, dr, empty, ctx.kname)
        vs_section["findings"] = ctx.findings_of(vs)
        vs_section["proxyWarnings"] = _vs_live(ctx, proxy, vs, fqdn)
        section["virtualServices"].append(vs_section)
    section["proxyWarnings"] = []
    if proxy is not None:
        section["proxyWarnings"] = live.check_virtual_services(
            proxy, [], fqdn, ctx.exists("VirtualService"))[1]
    return section


def _destination_rule(ctx: Context, dr: Optional[Resource], pods_labels: list[dict],
                      service_pods: list[dict], proxy: Optional[live.ProxyConfig], fqdn: str,
                      ports: list[int]) -> Optional[dict]:
    warnings = _dr_live(ctx, proxy, dr, fqdn, ports)
    if dr is None:
        return {"none": True, "proxyWarnings": warnings} if warnings else None
    section = traffic.destination_rule(dr, pods_labels, service_pods, ctx.kname)
    section["findings"] = ctx.findings_of(dr)
    section["proxyWarnings"] = warnings
    return section


def _dr_live(ctx: Context, proxy: Optional[live.ProxyConfig], dr: Optional[Resource],
             fqdn: str, ports: list[int]) -> list[str]:
    if proxy is None:
        return []
    expected = f"{dr.name}.{dr.namespace}" if dr is not None else None
    return live.check_destination_rule(proxy, expected, ctx.kname(dr) if dr is not None else "",
                                       fqdn, ports, ctx.exists("DestinationRule"))


def _vs_live(ctx: Context, proxy: Optional[live.ProxyConfig], vs: Resource,
             fqdn: str) -> list[str]:
    """Whether `proxy` carries `vs` for `fqdn`, and routes of it to clusters it lacks."""
    if proxy is None or proxy.error is not None:
        return []
    ref = f"{vs.name}.{vs.namespace}"
    missing, _ = live.check_virtual_services(proxy, [ref], fqdn, ctx.exists("VirtualService"))
    if missing:
        return [live.not_carried(proxy, f"VirtualService {ctx.kname(vs)}")]
    return [live.no_cluster(proxy, name) for name in live.clusters_missing(proxy, ref, fqdn)]


def ingress_report(ctx: Context, services: list[Resource], pods_labels: list[dict]) -> dict:
    """The Gateways exposing the services, with URLs, the VirtualService as the gateway
    routes it, and whether the gateway's proxy carries it."""
    mesh = ctx.mesh
    report: dict = {"skipped": None, "exposures": []}
    if not mesh.ingress_pods():
        report["skipped"] = "Skipping Gateway information (no ingress gateway pods)"
    for exposure in ingress.exposures(mesh, services):
        svc, vs = exposure.service, exposure.vs
        fqdn = service_fqdn(svc)
        dr = mesh.destination_rule_for(fqdn, exposure.pods[0].namespace if exposure.pods
                                       else svc.namespace)
        matching, other = traffic.subsets(dr, pods_labels)
        empty = traffic.subsets(dr, [dict(p.labels) for p in mesh.pods_selected_by(svc)])[1]
        entry: dict = {"gateway": exposure.ref, "gatewayExists": exposure.gateway is not None,
                       "virtualService": None, "urls": [],
                       "hosts": ingress.gateway_hosts(exposure),
                       "gatewayPods": [f"{p.name}.{p.namespace}" for p in exposure.pods],
                       "warnings": [], "findings": ctx.findings_of(exposure.gateway)}
        if exposure.gateway is None:
            entry["warnings"].append(f"WARNING: VirtualService {ctx.kname(vs)} references "
                                     f"non-existent gateway {exposure.ref}")
        elif not exposure.gateway.spec.get("selector"):
            entry["warnings"].append(f"Ingress Gateway {exposure.ref} applies to all workloads")
        elif not exposure.pods:
            entry["warnings"].append(f"WARNING: no Running pod matches the selector of Gateway "
                                     f"{exposure.ref}")
        # printIngressInfo: the gateway Services sorted by address
        for gw_service in sorted(exposure.services,
                                 key=lambda s: ingress.address(s, exposure.pods)):
            entry["urls"] += ingress.urls(gw_service, exposure.pods)
        vs_section = traffic.virtual_service(vs, svc, matching, other, dr, empty, ctx.kname)
        vs_section["findings"] = ctx.findings_of(vs)
        proxy = ctx.proxy(exposure.pods[0]) if exposure.pods else None
        numbers = [p.get("port") for p in as_list(svc.spec.get("ports"))
                   if isinstance(p, dict) and isinstance(p.get("port"), int)]
        vs_section["proxyWarnings"] = _vs_live(ctx, proxy, vs, fqdn) + \
            _dr_live(ctx, proxy, dr, fqdn, numbers)
        entry["virtualService"] = vs_section
        entry["proxy"] = _proxy_state(proxy)
        report["exposures"].append(entry)
    return report


def proxies_to_read(ctx: Context, pods: list[Resource], services: list[Resource]) -> list[Resource]:
    """The pods whose Envoys the description checks: the described pod(s) with a sidecar, and
    the first Running pod of each Gateway exposing the services."""
    out: list[Resource] = []
    for pod in pods:
        if as_dict(pod.obj.get("status")).get("phase") == "Running" and \
                any(c.get("name") == "istio-proxy" for c in containers(pod)):
            out.append(pod)
    for exposure in ingress.exposures(ctx.mesh, services):
        if exposure.pods and exposure.pods[0] not in out:
            out.append(exposure.pods[0])
    return out
