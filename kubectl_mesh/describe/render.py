"""The text of a description, istioctl's `x describe` layout and wording
(istioctl/pkg/describe/describe.go: printPod, printService, printDestinationRule,
printVirtualService, printPeerAuthentication, printConfigs, printIngressService): sections
separated by `--------------------`, facts indented by three spaces per level.

Lines istioctl does not have, each under the object it is about: analyze's findings
(`Error [IST0101] ...`), what the proxies do not carry (`WARNING: proxy ... does not carry`),
why a pod is not in the mesh, the routes' timeouts, retries and mirrors, whether mTLS is
required, the Sidecar and AuthorizationPolicies, and how to curl the ingress URL.
"""

from __future__ import annotations

from typing import Optional

from kubectl_mesh.describe.ingress import curl_hint
from kubectl_mesh.describe.traffic import route_lines
from kubectl_mesh.output import printable

SEPARATOR = "--------------------"
SCOPES = {"mesh": "mesh-wide", "namespace": "namespace", "workload": "workload"}
INDENT = 3  # printLevel1; printLevel2 is 6


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, level: int, text: str) -> None:
        self.lines.append(" " * (INDENT * level) + printable(text))

    def findings(self, level: int, findings: list[dict]) -> None:
        for f in findings:
            self.add(level, f"{f['level']} [{f['code']}] {f['message']}")

    def warnings(self, level: int, warnings: list[str]) -> None:
        for w in warnings:
            self.add(level, w)

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


def render(report: dict) -> str:
    out = Lines()
    if report["kind"] == "pod":
        _pod(out, report["pod"])
        for w in report["warnings"]:
            out.add(0, w)
    else:
        for w in report["warnings"]:
            out.add(0, w)
        if report["service"].get("noIstioPods"):
            return out.text()
    for i, svc in enumerate(report["services"]):
        if i == 0 and report["kind"] == "pod" or i > 0:
            out.add(0, SEPARATOR)
        _service(out, svc)
    if report["kind"] == "pod":
        out.add(0, SEPARATOR)
        _peer_authentication(out, report["peerAuthentication"])
        _sidecar(out, report["sidecar"])
        _authorization(out, report["authorizationPolicies"])
    if report.get("ingress") is not None:
        _ingress(out, report["ingress"])
    return out.text()


def _pod(out: Lines, pod: dict) -> None:
    ports = [f"{p['port']}{'' if p['protocol'] == 'TCP' else '/' + p['protocol']} "
             f"({p['container']})" for p in pod["ports"]]
    name = pod["ref"] if "ref" in pod else pod["name"]
    out.add(0, f"Pod: {name}")
    out.add(1, f"Pod Revision: {pod['revision']}")
    out.add(1, f"Pod Ports: {', '.join(ports)}" if ports else "Pod does not expose ports")
    if pod["phase"] != "Running":
        out.add(1, f"Pod is not Running ({pod['phase']})")
    for w in pod["warnings"]:
        out.add(0, w)
    if pod["notMeshedReason"] is not None:
        out.add(0, f"WARNING: {name} is not part of mesh; no Istio sidecar")
        out.add(1, pod["notMeshedReason"])
    for s in pod["suggestions"]:
        out.add(0, s)
    out.findings(1, pod["findings"])


def _service(out: Lines, svc: dict) -> None:
    out.add(0, f"Service: {svc['ref']}")
    for p in svc["ports"]:
        if p["error"]:
            out.add(1, p["error"])
        else:
            out.add(1, f"Port: {p['name']} {p['port']}/{p['protocol']} targets pod port "
                       f"{p['targetPort']}")
    out.findings(1, svc["findings"])
    dr = svc["destinationRule"]
    if dr is not None:
        if dr.get("none"):
            out.warnings(0, dr["proxyWarnings"])
        else:
            _destination_rule(out, dr)
    for vs in svc["virtualServices"]:
        _virtual_service(out, vs)
    out.warnings(0, svc.get("proxyWarnings", []))


def _destination_rule(out: Lines, dr: dict) -> None:
    out.add(0, f'DestinationRule: {dr["ref"]} for "{dr["host"]}"')
    matching, other = dr["matchingSubsets"], dr["nonMatchingSubsets"]
    if matching or other:
        if not matching:
            out.add(1, f"WARNING POD DOES NOT MATCH ANY SUBSETS.  (Non matching subsets "
                       f"{','.join(other)})")
        out.add(1, f"Matching subsets: {','.join(matching)}")
        if other:
            out.add(2, f"(Non-matching subsets {','.join(other)})")
    policy = dr["trafficPolicy"]
    if policy is None:
        out.add(1, "No Traffic Policy")
    else:
        if policy["tlsMode"] is not None:
            out.add(1, f"Traffic Policy TLS Mode: {policy['tlsMode']}")
        if policy["policies"]:
            out.add(1, f"Policies: {'/'.join(policy['policies'])}")
        _policy_details(out, 2, policy)
        if policy["portLevelSettings"]:
            out.add(1, "Port Level Settings:")
            for ps in policy["portLevelSettings"]:
                out.lines.append(f"    {printable(str(ps['port']))}:")  # istioctl: 4 spaces
                if ps["tlsMode"] is not None:
                    out.add(2, f"TLS Mode: {ps['tlsMode']}")
                if ps["policies"]:
                    out.add(2, f"Policies: {'/'.join(ps['policies'])}")
    out.findings(1, dr["findings"])
    out.warnings(1, dr["proxyWarnings"])


def _policy_details(out: Lines, level: int, policy: dict) -> None:
    """The load balancer and outlier detection settings, one line each, as the object has them."""
    lb = policy.get("loadBalancer")
    if isinstance(lb, dict) and lb:
        out.add(level, "Load balancer: " + (str(lb["simple"]) if "simple" in lb else _fields(lb)))
    od = policy.get("outlierDetection")
    if isinstance(od, dict):
        out.add(level, "Outlier detection: " + (_fields(od) or "defaults"))


def _fields(settings: dict) -> str:
    """`key=value` pairs of a settings object, nested ones as `key={...}`."""
    return " ".join(f"{k}={v}" if not isinstance(v, (dict, list)) else f"{k}={_json(v)}"
                    for k, v in settings.items())


def _json(value) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _virtual_service(out: Lines, vs: dict) -> None:
    out.add(0, f"VirtualService: {vs['ref']}")
    for level, text in route_lines(vs):
        out.add(level, text)
    out.findings(1, vs["findings"])
    out.warnings(1, vs.get("proxyWarnings", []))


def _peer_authentication(out: Lines, pa: dict) -> None:
    out.add(0, "Effective PeerAuthentication:")
    if not pa["known"]:
        out.add(1, "Workload mTLS mode: unknown (PeerAuthentications could not be listed)")
        return
    out.add(1, f"Workload mTLS mode: {pa['mode']}")
    if pa["source"]:
        out.add(2, f"(from the {SCOPES[pa['scope']]} PeerAuthentication {pa['source']})")
    if pa["perPort"]:
        out.add(1, "Port Level mTLS mode:")
        for port, mode in pa["perPort"].items():
            out.add(2, f"{port}: {mode}")
    if pa["mtlsRequired"]:
        out.add(1, "mTLS required: yes (plaintext is refused)")
    elif pa["mtlsRequiredPorts"]:
        out.add(1, f"mTLS required: on port(s) {', '.join(pa['mtlsRequiredPorts'])} only")
    else:
        out.add(1, "mTLS required: no (plaintext is accepted)")
    if pa["applied"]:
        out.add(0, "Applied PeerAuthentication:")
        out.add(1, ", ".join(pa["applied"]))


def _sidecar(out: Lines, sidecar: Optional[dict]) -> None:
    if sidecar is None:
        return
    if not sidecar["known"]:
        out.add(0, "Applied Sidecar: unknown (Sidecars could not be listed)")
        return
    out.add(0, "Applied Sidecar:")
    text = f"{sidecar['name']}.{sidecar['namespace']}"
    if sidecar["egressHosts"]:
        text += f" (egress hosts {', '.join(sidecar['egressHosts'])})"
    out.add(1, text)


def _authorization(out: Lines, policies: Optional[list]) -> None:
    if policies is None:
        out.add(0, "Applied AuthorizationPolicy: unknown (AuthorizationPolicies could not be "
                   "listed)")
        return
    if not policies:
        return
    out.add(0, "Applied AuthorizationPolicy:")
    out.add(1, ", ".join(f"{p['name']}.{p['namespace']} ({p['action']}, {p['rules']} rules)"
                         for p in policies))


def _ingress(out: Lines, ingress: dict) -> None:
    if ingress["skipped"]:
        out.add(0, ingress["skipped"])
    for exposure in ingress["exposures"]:
        out.add(0, SEPARATOR)
        for url in exposure["urls"]:
            out.add(0, f"Exposed on Ingress Gateway {url}")
        for w in exposure["warnings"]:
            out.add(0, w)
        if exposure["gatewayExists"]:
            hosts = ", ".join(exposure["hosts"]) or "none of the VirtualService's hosts"
            out.add(1, f"Gateway: {exposure['gateway']}, hosts {hosts}")
        for url in exposure["urls"]:
            out.add(1, curl_hint(url, exposure["hosts"]))
        out.findings(1, exposure["findings"])
        _virtual_service(out, exposure["virtualService"])
