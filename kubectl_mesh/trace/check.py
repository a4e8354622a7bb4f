"""`routes --check`: problems in a proxy's live config, without a request.

Finds routes to clusters that do not exist (503 NC), EDS clusters with no healthy endpoint
(503 UH; only when endpoint data is given) and routes that can never match because an
earlier route of the same virtual host matches everything they would (first match wins).
Two virtual hosts of one route config cannot share a domain (Envoy rejects the update), and a
more specific domain always beats a wildcard, so virtual hosts do not shadow each other.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from kubectl_mesh.configdump import ConfigDump, Endpoint, Table
from kubectl_mesh.configdump.common import istio_config_ref
from kubectl_mesh.trace.match import describe_route_match, regex_full_match
from kubectl_mesh.trace.upstream import endpoint_state, is_healthy, panic_threshold
from kubectl_mesh.trace.verdict import ClusterTarget, fix_missing_cluster, fix_unhealthy_cluster

ERROR, WARNING = "error", "warning"
DANGLING_CLUSTER = "dangling_cluster"
NO_HEALTHY_ENDPOINTS = "no_healthy_endpoints"
SHADOWED_ROUTE = "shadowed_route"
# Match conditions the shadowing check cannot compare: a route carrying one never shadows.
_OPAQUE = ("runtime_fraction", "grpc", "tls_context", "dynamic_metadata", "filter_state",
           "connect_matcher", "path_match_policy")


@dataclasses.dataclass(frozen=True)
class Finding:
    severity: str  # error | warning
    kind: str  # dangling_cluster | no_healthy_endpoints | shadowed_route
    where: str  # `route config / virtual host / route #i`, or the cluster name
    message: str
    fix: str
    istio_object: str = ""  # `VirtualService name.ns` / `DestinationRule name.ns`

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_config(dump: ConfigDump, endpoints: Iterable[Endpoint] | None = None) -> list[Finding]:
    """All findings, errors first. Needs the routes and clusters sections (BadInputError
    otherwise); endpoint health is checked only when `endpoints` is given."""
    routes = dump.routes
    clusters = {c.name: c for c in dump.clusters}
    findings: list[Finding] = []
    referenced: set[str] = set()
    for rc in routes:
        for vh in rc.raw.get("virtual_hosts") or ():
            vh_routes = list(vh.get("routes") or ())
            for i, r in enumerate(vh_routes):
                where = f"{rc.name or '(static)'} / {vh.get('name', '')} / route #{i}"
                vs = istio_config_ref(r.get("metadata"))
                for name in _route_clusters(r):
                    referenced.add(name)
                    if name not in clusters:
                        findings.append(Finding(
                            ERROR, DANGLING_CLUSTER, where,
                            f"route sends to cluster {name}, which does not exist (503 NC)",
                            fix_missing_cluster(name, vs), _obj("VirtualService", vs)))
            findings += _shadowed(rc.name or "(static)", vh, vh_routes)
    if endpoints is not None:
        findings += _unhealthy(dump, list(endpoints), referenced)
    findings = list(dict.fromkeys(findings))  # route configs repeat in some dumps
    findings.sort(key=lambda f: (f.severity != ERROR, f.kind))
    return findings


def findings_table(findings: list[Finding], wide: bool = False) -> Table:
    """`SEVERITY KIND WHERE MESSAGE FIX`; wide adds ISTIO OBJECT."""
    headers = ("SEVERITY", "KIND", "WHERE", "MESSAGE", "FIX") + (("ISTIO OBJECT",) if wide else ())
    rows = [(f.severity, f.kind, f.where, f.message, f.fix) + ((f.istio_object,) if wide else ())
            for f in findings]
    return Table(headers, rows, [f.to_dict() for f in findings])


def _obj(kind: str, ref: str) -> str:
    return f"{kind} {ref}" if ref and ref != "<unknown>" else ""


def _route_clusters(route: dict) -> list[str]:
    action = route.get("route") or {}
    if action.get("cluster"):
        return [action["cluster"]]
    return [c.get("name", "") for c in (action.get("weighted_clusters") or {}).get("clusters") or ()]


def _unhealthy(dump: ConfigDump, endpoints: list[Endpoint], referenced: set[str]) -> list[Finding]:
    by_cluster: dict[str, list[Endpoint]] = {}
    for e in endpoints:
        by_cluster.setdefault(e.cluster, []).append(e)
    out = []
    for c in dump.clusters:
        if c.type != "EDS":
            continue  # DNS, static and original-destination clusters have no EDS data to judge
        eps = by_cluster.get(c.name, [])
        if any(is_healthy(e) for e in eps):
            continue
        panic = panic_threshold(c.raw)
        if eps and panic > 0:
            message = (f"none of {len(eps)} endpoints is healthy; panic routing sends traffic "
                       "to them anyway")
        else:
            message = (f"no healthy endpoint ({len(eps)} endpoints): requests get 503 UH")
        severity = ERROR if c.name in referenced and not (eps and panic > 0) else WARNING
        target = ClusterTarget(c.name, 100.0, True, c.type, c.state, c.destination_rule,
                               tuple(endpoint_state(e) for e in eps), panic)
        out.append(Finding(severity, NO_HEALTHY_ENDPOINTS, c.name, message,
                           fix_unhealthy_cluster(target), _obj("DestinationRule", c.destination_rule)))
    return out


def _shadowed(rc_name: str, vh: dict, routes: list[dict]) -> list[Finding]:
    out = []
    for n, later in enumerate(routes):
        for m in range(n):
            earlier = routes[m]
            if not covers(earlier.get("match") or {}, later.get("match") or {}):
                continue
            vs_m = istio_config_ref(earlier.get("metadata"))
            vs_n = istio_config_ref(later.get("metadata"))
            owners = list(dict.fromkeys(x for x in (vs_n, vs_m) if x and x != "<unknown>"))
            in_vs = " and ".join(f"VirtualService {o}" for o in owners) or "the VirtualService"
            out.append(Finding(
                WARNING, SHADOWED_ROUTE, f"{rc_name} / {vh.get('name', '')} / route #{n}",
                f"route #{n} ({describe_route_match(later.get('match') or {})}) is shadowed by "
                f"route #{m} ({describe_route_match(earlier.get('match') or {})}): it never matches",
                f"put the more specific match first in {in_vs} (http routes are tried in order)",
                _obj("VirtualService", vs_n)))
            break
    return out


def covers(earlier: dict, later: dict) -> bool:
    """True when every request matching `later` also matches `earlier` (raw RouteMatch dicts).
    Conservative: answers False whenever it cannot be sure."""
    if any(k in earlier for k in _OPAQUE) or "connect_matcher" in later:
        return False
    for key in ("headers", "query_parameters"):
        mine = earlier.get(key) or []
        if any(cond not in (later.get(key) or []) for cond in mine):
            return False
    return _covers_path(earlier, later)


def _sensitive(m: dict) -> bool:
    case = m.get("case_sensitive", True)
    return case.get("value", True) if isinstance(case, dict) else bool(case)


def _path_rule(m: dict) -> tuple[str | None, str]:
    for kind in ("prefix", "path", "path_separated_prefix"):
        if kind in m:
            return kind, m[kind]
    if "safe_regex" in m:
        return "safe_regex", (m["safe_regex"] or {}).get("regex", "")
    return None, ""


def _covers_path(earlier: dict, later: dict) -> bool:
    kind_e, value_e = _path_rule(earlier)
    kind_l, value_l = _path_rule(later)
    if kind_e is None or kind_l is None:
        return False
    if kind_e == "prefix" and value_e in ("", "/"):
        return True  # every :path starts with "/"
    if kind_e == "safe_regex":
        if value_e in (".*", "/.*", ".+", "/.+"):
            return True
        if kind_l == "path" and _sensitive(later):
            return regex_full_match(value_e, value_l)
        return kind_l == "safe_regex" and value_l == value_e
    if kind_l == "safe_regex":
        return False
    sens_e, sens_l = _sensitive(earlier), _sensitive(later)
    if sens_e and not sens_l and value_l.lower() != value_l.upper():
        return False  # the later route also matches case variants the earlier one misses
    fold = (lambda s: s) if sens_e else (lambda s: s.lower())
    e, l_ = fold(value_e), fold(value_l)
    if kind_e == "prefix":
        return l_.startswith(e)
    if kind_e == "path":
        return kind_l == "path" and l_ == e
    # path_separated_prefix: the path equals it or continues with "/"
    base = e.rstrip("/")
    if kind_l in ("path", "path_separated_prefix"):
        return l_ == base or l_.startswith(base + "/")
    return l_.startswith(base + "/")  # a later prefix that already includes the separator
