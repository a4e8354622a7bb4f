"""The DestinationRule and VirtualServices of one Service, seen from its pods: which subsets
the pods are in, the traffic policy, and each route with where it sends traffic.

The facts and their wording are istioctl's (istioctl/pkg/describe/describe.go:
printDestinationRule, getDestRuleSubsets, recordShortPolicies, httpRouteMatchSvc,
renderMatch), computed from the objects rather than from one proxy's config, and with the
routes' timeouts, retries, fault injection and mirrors added.
"""

from __future__ import annotations

from typing import Callable, Optional

from kubectl_mesh.analyze.resources import Resource, as_dict, as_list, selector_matches
from kubectl_mesh.describe.objects import destination_fqdn, service_fqdn


def _labels(value) -> dict:
    return {str(k): str(v) for k, v in as_dict(value).items()}


def subsets(dr: Optional[Resource], pods_labels: list[dict]) -> tuple[list[str], list[str]]:
    """getDestRuleSubsets: the subsets whose labels some pod has, and the others."""
    matching, other = [], []
    for subset in as_list(dr.spec.get("subsets") if dr is not None else None):
        subset = as_dict(subset)
        name = str(subset.get("name") or "")
        selector = _labels(subset.get("labels"))
        (matching if any(selector_matches(selector, labels) for labels in pods_labels)
         else other).append(name)
    return matching, other


def _short_policies(policy: dict) -> list[str]:
    """recordShortPolicies: which of load balancer / connection pool / outlier detection."""
    return [label for key, label in (("loadBalancer", "load balancer"),
                                     ("connectionPool", "connection pool"),
                                     ("outlierDetection", "outlier detection"))
            if policy.get(key) is not None]


def _policy(policy: dict) -> dict:
    tls = as_dict(policy.get("tls"))
    out: dict = {"tlsMode": (tls.get("mode") or "DISABLE") if policy.get("tls") is not None
                 else None, "policies": _short_policies(policy)}
    for key in ("loadBalancer", "connectionPool", "outlierDetection"):
        if policy.get(key) is not None:
            out[key] = policy[key]
    return out


def destination_rule(dr: Resource, pods_labels: list[dict], service_pods: list[dict],
                     kname: Callable[[Resource], str]) -> dict:
    """The DestinationRule section; `service_pods` (labels of every pod of the service) finds
    subsets that select no pod at all."""
    matching, other = subsets(dr, pods_labels)
    empty = subsets(dr, service_pods)[1]
    section: dict = {"name": dr.name, "namespace": dr.namespace, "ref": kname(dr),
                     "host": str(dr.spec.get("host") or ""), "matchingSubsets": matching,
                     "nonMatchingSubsets": other, "subsetsSelectingNoPod": empty,
                     "trafficPolicy": None}
    policy = dr.spec.get("trafficPolicy")
    if isinstance(policy, dict):
        section["trafficPolicy"] = _policy(policy)
        section["trafficPolicy"]["portLevelSettings"] = [
            {"port": as_dict(ps.get("port")).get("number"), **_policy(ps)}
            for ps in (as_dict(p) for p in as_list(policy.get("portLevelSettings")))]
    return section


# -- VirtualServices -----------------------------------------------------------------------------


def render_string_match(sm) -> str:
    """renderStringMatch: `exact`, `prefix*`, else the match as it is (`regex:...`)."""
    sm = as_dict(sm)
    if "exact" in sm:
        return str(sm["exact"])
    if "prefix" in sm:
        return f"{sm['prefix']}*"
    if "regex" in sm:
        return f"regex:{sm['regex']}"
    return ""


def render_match(match: dict) -> str:
    """renderMatch: `Match: /prefix* when headers are end-user=jason`."""
    text = "Match: "
    if match.get("uri") is not None:
        text += render_string_match(match.get("uri"))
        if match.get("ignoreUriCase"):
            text += " uncased"
    headers = as_dict(match.get("headers"))
    if headers:
        text += " when headers are " + "; ".join(
            f"{k}={render_string_match(v)}" for k, v in headers.items())
    return text.strip()


def render_matches(matches: list) -> str:
    """renderMatches: `everything` for a route without matches."""
    if not matches:
        return "everything"
    return ", ".join(render_match(as_dict(m)) for m in matches)


def _percent(value) -> str:
    value = as_dict(value).get("value")
    return f" {value:g}%" if isinstance(value, (int, float)) else ""


def render_fault(fault: dict) -> str:
    parts = []
    delay = as_dict(fault.get("delay"))
    if delay:
        parts.append(f"delay {delay.get('fixedDelay') or delay.get('exponentialDelay') or '?'}"
                     + _percent(delay.get("percentage")))
    abort = as_dict(fault.get("abort"))
    if abort:
        status = abort.get("httpStatus") or abort.get("grpcStatus") or \
            ("HTTP/2 error" if abort.get("http2Error") else "?")
        parts.append(f"abort {status}" + _percent(abort.get("percentage")))
    return ", ".join(parts) or "(empty)"


def render_retries(retries: dict) -> str:
    attempts = retries.get("attempts")
    text = f"{attempts} attempts" if attempts is not None else "default attempts"
    if retries.get("perTryTimeout"):
        text += f", {retries['perTryTimeout']} per try"
    if retries.get("retryOn"):
        text += f", on {retries['retryOn']}"
    return text


def _mirrors(route: dict) -> list[dict]:
    out = []
    if route.get("mirror") is not None:
        out.append({"destination": as_dict(route.get("mirror")),
                    "percentage": as_dict(route.get("mirrorPercentage")).get("value")})
    for m in as_list(route.get("mirrors")):
        m = as_dict(m)
        out.append({"destination": as_dict(m.get("destination")),
                    "percentage": as_dict(m.get("percentage")).get("value")})
    return out


def virtual_service(vs: Resource, svc: Resource, matching: list[str], other: list[str],
                    dr: Optional[Resource], empty_subsets: list[str],
                    kname: Callable[[Resource], str]) -> dict:
    """The VirtualService section for `svc`: each HTTP/TLS/TCP route with a destination in
    `svc`, where each destination goes and whether it reaches the described pod(s)."""
    svc_host = service_fqdn(svc)
    routes = []
    counts = {"http": 0, "tls": 0, "tcp": 0}
    for kind in ("http", "tls", "tcp"):
        for route in as_list(vs.spec.get(kind)):
            route = as_dict(route)
            counts[kind] += 1
            dests = [as_dict(d) for d in as_list(route.get("route"))]
            if not any(destination_fqdn(str(as_dict(d.get("destination")).get("host") or ""),
                                        vs.namespace) == svc_host for d in dests):
                continue
            routes.append(_route(kind, route, dests, vs, svc_host, matching, other, dr,
                                 empty_subsets, kname))
    reaching = sum(1 for r in routes if r["reachesPod"])
    return {"name": vs.name, "namespace": vs.namespace, "ref": kname(vs),
            "hosts": [h for h in as_list(vs.spec.get("hosts")) if isinstance(h, str)],
            "gateways": [g for g in as_list(vs.spec.get("gateways")) if isinstance(g, str)],
            "routes": routes, "routesReachingPod": reaching,
            "routesNotReachingPod": sum(counts.values()) - reaching, "counts": counts}


def _route(kind: str, route: dict, dests: list[dict], vs: Resource, svc_host: str,
           matching: list[str], other: list[str], dr: Optional[Resource],
           empty_subsets: list[str], kname: Callable[[Resource], str]) -> dict:
    matches = as_list(route.get("match"))
    out_dests = []
    for d in dests:
        dest = as_dict(d.get("destination"))
        host = str(dest.get("host") or "")
        subset = str(dest.get("subset") or "")
        weight = d.get("weight")
        weight = weight if isinstance(weight, int) and not isinstance(weight, bool) else None
        to_service = destination_fqdn(host, vs.namespace) == svc_host
        note = None
        reaches = to_service
        if to_service and subset:
            if subset in other:
                reaches = False
                note = f"Route to non-matching subset {subset} for ({render_matches(matches)})"
                if subset in empty_subsets:
                    note += f"; subset {subset} selects no pod of the service (503 UH)"
            elif subset not in matching:
                reaches = False
                note = (f"Warning: Route to subset {subset} but NO DESTINATION RULE defining "
                        "subsets!" if dr is None else
                        f"Warning: Route to UNKNOWN subset {subset}; check DestinationRule "
                        f"{kname(dr)}")
        port = as_dict(dest.get("port")).get("number")
        out_dests.append({"host": host, "subset": subset, "port": port, "weight": weight,
                          "toService": to_service, "reachesPod": reaches, "note": note})
    entry: dict = {"kind": kind, "name": route.get("name") or "",
                   "match": render_matches(matches) if kind == "http" else
                   ", ".join(_l4_match(as_dict(m)) for m in matches) or "everything",
                   "matches": matches, "destinations": out_dests,
                   "reachesPod": any(d["reachesPod"] for d in out_dests)}
    if kind == "http":
        for key in ("timeout", "retries", "fault"):
            if route.get(key) is not None:
                entry[key] = route[key]
        mirrors = _mirrors(route)
        if mirrors:
            entry["mirrors"] = mirrors
    return entry


def _l4_match(match: dict) -> str:
    parts = []
    if match.get("port") is not None:
        parts.append(f"port {match['port']}")
    if match.get("sniHosts"):
        parts.append("SNI " + ",".join(str(h) for h in as_list(match["sniHosts"])))
    if match.get("destinationSubnets"):
        parts.append("to " + ",".join(str(h) for h in as_list(match["destinationSubnets"])))
    return "Match: " + (" ".join(parts) if parts else "everything")


def route_lines(section: dict) -> list[tuple[int, str]]:
    """(indent level, text) lines under `VirtualService: NAME`, istioctl's facts first."""
    lines: list[tuple[int, str]] = []
    counts = section["counts"]
    for route in section["routes"]:
        for d in route["destinations"]:
            fact = f'Route to host "{d["host"]}"'
            if d["subset"]:
                fact += f' subset "{d["subset"]}"'
            if d["port"] is not None:
                fact += f' port {d["port"]}'
            if d["weight"]:
                fact += f' with weight {d["weight"]}%'
            lines.append((1, fact))
            if d["note"]:
                lines.append((2, d["note"]))
        facts = []
        if route.get("fault") is not None:
            facts.append(f"Fault injection {render_fault(as_dict(route['fault']))}")
        if route["matches"]:
            facts.append(route["match"])
        if facts:
            lines.append((1, ", ".join(facts)))
        if route.get("timeout") is not None:
            lines.append((1, f"Timeout {route['timeout']}"))
        if route.get("retries") is not None:
            lines.append((1, f"Retries {render_retries(as_dict(route['retries']))}"))
        for m in route.get("mirrors", []):
            dest = m["destination"]
            text = f'Mirror to host "{dest.get("host", "")}"'
            if dest.get("subset"):
                text += f' subset "{dest["subset"]}"'
            if m["percentage"] is not None:
                text += f' ({m["percentage"]:g}%)'
            lines.append((1, text))
    if not section["routesReachingPod"]:
        for kind, label in (("http", "HTTP"), ("tcp", "TCP"), ("tls", "TLS")):
            if counts[kind]:
                lines.append((1, f"WARNING: No destinations match pod subsets (checked "
                                 f"{counts[kind]} {label} routes)"))
    elif section["routesNotReachingPod"]:
        # istioctl printVirtualService: an earlier match may take traffic before these
        lines.append((1, f"{section['routesNotReachingPod']} additional destination(s) that "
                         "will not reach this pod"))
    elif not any(_istioctl_facts(r) for r in section["routes"] if r["reachesPod"]):
        # istioctl printVirtualService: "We printed nothing other than the name. Print
        # something." (our destination lines above are additions)
        for kind, label in (("http", "HTTP"), ("tcp", "TCP")):
            if counts[kind]:
                lines.append((1, f"{counts[kind]} {label} route(s)"))
    return lines


def _istioctl_facts(route: dict) -> int:
    """How many lines istioctl prints for a route that reaches the pod (describe.go
    `httpRouteMatchSvc`): a weighted destination of the service that reaches it, each
    destination of another host, and one for the match conditions or fault."""
    facts = sum(1 for d in route["destinations"]
                if (d["reachesPod"] and d["weight"]) or not d["toService"])
    return facts + (1 if route.get("fault") is not None or route["matches"] else 0)
