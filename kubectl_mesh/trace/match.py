"""Envoy's HTTP matching rules, evaluated on raw (snake_case) route-config dicts:
virtual-host domain search, route match (path kinds, headers, query parameters).

Kept to what Envoy documents (route_components.proto): domains are searched exact, then
suffix wildcards (longest first), then prefix wildcards (longest first), then `*`; routes are
tried in order and the first match wins. RE2 regexes are evaluated with Python's `re` full
match, which agrees for the patterns Istio generates.
"""

from __future__ import annotations

import dataclasses
import re

from kubectl_mesh.trace.request import TraceRequest, split_host_port


@dataclasses.dataclass(frozen=True)
class DomainMatch:
    """Which vhost (index into the route config's virtual_hosts) matched, by which domain."""

    index: int
    domain: str
    rule: str  # exact | suffix wildcard | prefix wildcard | catch-all


def routing_host(request_host: str, route_config: dict, hcm: dict | None = None,
                 listener_port: int | None = None) -> str:
    """The host Envoy matches domains against: lower-cased, port stripped when the HCM
    (`strip_any_host_port`, `strip_matching_host_port`) or the route config
    (`ignore_port_in_host_matching`) says so."""
    host = request_host.lower()
    name, port = split_host_port(host)
    hcm = hcm or {}
    if port is not None and (hcm.get("strip_any_host_port")
                             or (hcm.get("strip_matching_host_port") and port == listener_port)
                             or route_config.get("ignore_port_in_host_matching")):
        return name
    return host


def find_virtual_host(virtual_hosts: list[dict], host: str) -> DomainMatch | None:
    """Envoy's domain search over `virtual_hosts` (raw dicts) for `host` (already lower-cased
    and port-stripped as `routing_host` decides)."""
    exact, suffix, prefix, star = [], [], [], []
    for i, vh in enumerate(virtual_hosts):
        for domain in vh.get("domains") or ():
            d = domain.lower()
            if d == "*":
                star.append((i, domain))
            elif d.startswith("*"):
                suffix.append((i, domain))
            elif d.endswith("*"):
                prefix.append((i, domain))
            else:
                exact.append((i, domain))
    for i, d in exact:
        if d.lower() == host:
            return DomainMatch(i, d, "exact")
    # The wildcard never matches the empty string: `*.foo.com` does not match `.foo.com`.
    for i, d in sorted(suffix, key=lambda p: -len(p[1])):
        s = d[1:].lower()
        if host.endswith(s) and len(host) > len(s):
            return DomainMatch(i, d, "suffix wildcard")
    for i, d in sorted(prefix, key=lambda p: -len(p[1])):
        p = d[:-1].lower()
        if host.startswith(p) and len(host) > len(p):
            return DomainMatch(i, d, "prefix wildcard")
    if star:
        return DomainMatch(star[0][0], "*", "catch-all")
    return None


def describe_route_match(match: dict) -> str:
    """One line for a raw RouteMatch: `prefix /api`, `path /x`, `regex ^/v[0-9]+`, plus
    headers and query parameters."""
    parts = []
    for kind in ("prefix", "path", "path_separated_prefix"):
        if kind in match:
            parts.append(f"{kind} {match[kind]}")
    if "safe_regex" in match:
        parts.append(f"regex {(match['safe_regex'] or {}).get('regex', '')}")
    if "connect_matcher" in match:
        parts.append("CONNECT")
    if parts and not _case_sensitive(match):
        parts[0] += " (case-insensitive)"
    for h in match.get("headers") or ():
        parts.append("header " + describe_header_matcher(h))
    for q in match.get("query_parameters") or ():
        parts.append(f"query {q.get('name', '')}")
    return ", ".join(parts) or "any"


def describe_header_matcher(h: dict) -> str:
    name = h.get("name", "")
    neg = "!" if h.get("invert_match") else ""
    sm = h.get("string_match") or {}
    for key, op in (("exact_match", "="), ("prefix_match", "^="), ("suffix_match", "$="),
                    ("contains_match", "*=")):
        if key in h:
            return f"{neg}{name}{op}{h[key]}"
    for key, op in (("exact", "="), ("prefix", "^="), ("suffix", "$="), ("contains", "*=")):
        if key in sm:
            return f"{neg}{name}{op}{sm[key]}"
    regex = (h.get("safe_regex_match") or sm.get("safe_regex") or {}).get("regex")
    if regex is not None:
        return f"{neg}{name}~{regex}"
    if "present_match" in h:
        return f"{'' if h['present_match'] else '!'}{neg}{name} present"
    return f"{neg}{name}"


def route_matches(match: dict, request: TraceRequest) -> tuple[bool, str]:
    """Whether a raw RouteMatch matches `request`, and why not (the first failing condition)."""
    if not _path_matches(match, request):
        return False, "path"
    for h in match.get("headers") or ():
        if not header_matches(h, request.header(h.get("name", ""))):
            return False, "header " + describe_header_matcher(h)
    query = request.query
    for q in match.get("query_parameters") or ():
        if not _query_matches(q, query.get(q.get("name", ""))):
            return False, f"query parameter {q.get('name', '')}"
    if match.get("grpc") is not None and not (request.header("content-type") or "").startswith(
            "application/grpc"):
        return False, "grpc"
    return True, ""


def _case_sensitive(match: dict) -> bool:
    case = match.get("case_sensitive", True)
    return case.get("value", True) if isinstance(case, dict) else bool(case)


def _path_matches(match: dict, request: TraceRequest) -> bool:
    sensitive = _case_sensitive(match)

    def fold(s: str) -> str:
        return s if sensitive else s.lower()

    if "prefix" in match:
        return fold(request.path).startswith(fold(match["prefix"]))
    path = request.path_only
    if "path" in match:
        return fold(path) == fold(match["path"])
    if "path_separated_prefix" in match:
        p = fold(match["path_separated_prefix"])
        return fold(path) == p or fold(path).startswith(p.rstrip("/") + "/")
    if "safe_regex" in match:
        return regex_full_match((match["safe_regex"] or {}).get("regex", ""), path)
    if "connect_matcher" in match:
        return request.method == "CONNECT"
    return False  # path_match_policy and others: not modelled, treat as no match


def regex_full_match(pattern: str, value: str) -> bool:
    """RE2 full match, approximated with Python `re`; an invalid pattern never matches."""
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return False


def string_matches(sm: dict, value: str) -> bool:
    """envoy.type.matcher.v3.StringMatcher."""
    fold = (lambda s: s.lower()) if sm.get("ignore_case") else (lambda s: s)
    if "exact" in sm:
        return fold(value) == fold(sm["exact"])
    if "prefix" in sm:
        return fold(value).startswith(fold(sm["prefix"]))
    if "suffix" in sm:
        return fold(value).endswith(fold(sm["suffix"]))
    if "contains" in sm:
        return fold(sm["contains"]) in fold(value)
    if "safe_regex" in sm:
        return regex_full_match((sm["safe_regex"] or {}).get("regex", ""), value)
    return True


def header_matches(h: dict, value: str | None) -> bool:
    """envoy.config.route.v3.HeaderMatcher against one header value (None = absent)."""
    if value is None and h.get("treat_missing_header_as_empty"):
        value = ""
    present_kind = "present_match" in h
    if value is None:
        # Envoy (HeaderUtility::matchHeaders): an absent header matches an inverted value
        # matcher (Istio's `withoutHeaders`) and `present_match: false`, nothing else.
        if h.get("invert_match"):
            return not present_kind
        return present_kind and not h["present_match"]
    if present_kind:
        result = bool(h["present_match"])
    elif "exact_match" in h:
        result = value == h["exact_match"]
    elif "prefix_match" in h:
        result = value.startswith(h["prefix_match"])
    elif "suffix_match" in h:
        result = value.endswith(h["suffix_match"])
    elif "contains_match" in h:
        result = h["contains_match"] in value
    elif "safe_regex_match" in h:
        result = regex_full_match((h["safe_regex_match"] or {}).get("regex", ""), value)
    elif "string_match" in h:
        result = string_matches(h["string_match"] or {}, value)
    elif "range_match" in h:
        r = h["range_match"] or {}
        try:
            result = int(r.get("start", 0)) <= int(value) < int(r.get("end", 0))
        except ValueError:
            result = False
    else:
        result = True  # name only: present
    return result != bool(h.get("invert_match"))


def _query_matches(q: dict, value: str | None) -> bool:
    if "present_match" in q:
        return (value is not None) == bool(q["present_match"])
    if value is None:
        return False
    if "string_match" in q:
        return string_matches(q["string_match"] or {}, value)
    return True
