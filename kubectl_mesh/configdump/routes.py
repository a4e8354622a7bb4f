"""Route configurations: RoutesConfigDump model, `--name` filter and the routes table.

A gateway can hold thousands of virtual hosts, and `routes` renders them all: the per-route
records are NamedTuples (immutable, and ~3x cheaper to build than frozen dataclasses), and a
route configuration parses its virtual hosts only when asked (the tracer and `--check`
walk the raw config and never do)."""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

from kubectl_mesh.configdump.common import Table, istio_config_ref
from kubectl_mesh.configdump.keys import normalise
from kubectl_mesh.configdump.shape import (
    SHAPE_ERRORS, Malformed, elements, relative, text, texts,
)

PASSTHROUGH = "PassthroughCluster"


class RouteMatch(NamedTuple):
    kind: str  # prefix | path | path_separated_prefix | regex | connect | other
    value: str
    headers: tuple[str, ...] = ()  # "name" or "name=value" per header matcher
    case_sensitive: bool = True

    def describe(self) -> str:
        """istioctl's MATCH cell: `X*`, `PathPrefix:X`, `X`, `regex X`."""
        if self.kind == "prefix":
            return f"{self.value}*"
        if self.kind == "path_separated_prefix":
            return f"PathPrefix:{self.value}"
        if self.kind == "path":
            return self.value
        if self.kind == "regex":
            return f"regex {self.value}"
        return ""


class RetryPolicy(NamedTuple):
    retry_on: str
    num_retries: int | None
    per_try_timeout: str


class RouteAction(NamedTuple):
    kind: str  # cluster | weighted_clusters | cluster_header | redirect | direct_response | other
    cluster: str = ""
    weighted_clusters: tuple[tuple[str, int], ...] = ()  # (cluster, weight)
    redirect: str = ""
    status: int | None = None  # direct_response / redirect code
    timeout: str = ""
    retry: RetryPolicy | None = None

    @property
    def clusters(self) -> tuple[str, ...]:
        """Every cluster this action can send traffic to."""
        if self.kind == "cluster":
            return (self.cluster,)
        return tuple(name for name, _ in self.weighted_clusters)

    def describe(self) -> str:
        if self.kind == "cluster":
            return self.cluster
        if self.kind == "weighted_clusters":
            return ", ".join(f"{name} {weight}%" for name, weight in self.weighted_clusters)
        if self.kind == "cluster_header":
            return f"cluster from header {self.cluster}"
        if self.kind == "redirect":
            return f"redirect {self.redirect}".rstrip()
        if self.kind == "direct_response":
            return f"direct {self.status}" if self.status is not None else "direct"
        return self.kind


class Route(NamedTuple):
    name: str
    match: RouteMatch
    action: RouteAction
    virtual_service: str  # `name.ns` from filter_metadata.istio.config, or ""


class VirtualHost(NamedTuple):
    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]


@dataclasses.dataclass(frozen=True)
class RouteConfig:
    name: str
    state: str  # dynamic | static | inline
    version_info: str
    last_updated: str
    raw: dict = dataclasses.field(repr=False, compare=False)
    where: str = dataclasses.field(default="", repr=False, compare=False)  # its JSON path

    @functools.cached_property
    def virtual_hosts(self) -> tuple[VirtualHost, ...]:
        """Parsed on first use; Malformed (with the JSON path) for a wrongly shaped one."""
        out = []
        for path, vh in elements(self.raw, "virtual_hosts", self._at):
            try:
                routes = tuple(_route(r, at) for at, r in elements(vh, "routes", relative))
                out.append(VirtualHost(text(vh, "name"), texts(vh, "domains"), routes))
            except (Malformed, *SHAPE_ERRORS) as e:
                raise Malformed.of(path, e) from e
        return tuple(out)

    def _at(self, field: str, index: int) -> str:
        return f"{self.where}.{field}[{index}]" if self.where else f"{field}[{index}]"


def parse_route_configs(section: dict, at=relative) -> list[RouteConfig]:
    """RoutesConfigDump → route configurations, dynamic first (as istioctl lists them);
    Malformed names the JSON path (`at(field, i)`) of a wrongly shaped one."""
    out = []
    for field, state in (("dynamic_route_configs", "dynamic"), ("static_route_configs", "static")):
        for path, item in elements(section, field, at):
            try:
                item = normalise(item)
                raw = item.get("route_config")
                if raw is None:
                    continue
                version, updated = text(item, "version_info"), text(item, "last_updated")
            except (Malformed, *SHAPE_ERRORS) as e:
                raise Malformed.of(path, e) from e
            try:
                name = text(raw, "name")
            except (Malformed, *SHAPE_ERRORS) as e:
                raise Malformed.of(f"{path}.route_config", e) from e
            out.append(RouteConfig(name, state, version, updated, raw, f"{path}.route_config"))
    return out


def parse_route_config(raw: dict, state: str = "inline", version_info: str = "",
                       last_updated: str = "", where: str = "") -> RouteConfig:
    """One RouteConfiguration (v2 or v3, snake_case) → RouteConfig (virtual hosts parsed on
    first use); `where` is its JSON path, for error messages."""
    return RouteConfig(text(raw, "name"), state, version_info, last_updated, raw, where)


def _route(raw: dict, path: str) -> Route:
    part = path
    try:
        name = text(raw, "name")
        part = f"{path}.match"
        match = _match(raw.get("match") or {})
        part = f"{path}.{next((k for k in ('route', 'redirect') if k in raw), '')}".rstrip(".")
        action = _action(raw)
        part = path
        return Route(name, match, action, istio_config_ref(raw.get("metadata")))
    except (Malformed, *SHAPE_ERRORS) as e:
        raise Malformed.of(part, e) from e


def _match(m: dict) -> RouteMatch:
    headers = tuple(_header(h) for h in m["headers"]) if m.get("headers") else ()
    case = m.get("case_sensitive", True)
    case = case.get("value", True) if isinstance(case, dict) else bool(case)
    for kind in ("prefix", "path", "path_separated_prefix"):
        if kind in m:
            return RouteMatch(kind, text(m, kind), headers, case)
    if "safe_regex" in m:
        return RouteMatch("regex", text(m["safe_regex"] or {}, "regex"), headers, case)
    if "regex" in m:  # v2
        return RouteMatch("regex", text(m, "regex"), headers, case)
    if "connect_matcher" in m:
        return RouteMatch("connect", "", headers, case)
    return RouteMatch("other", "", headers, case)


def _header(h: dict) -> str:
    name = h.get("name", "")
    for key in ("exact_match", "prefix_match", "suffix_match", "present_match"):
        if key in h:
            return f"{name}={h[key]}" if key == "exact_match" else name
    string_match = h.get("string_match") or {}
    for key, value in string_match.items():
        if key in ("exact", "prefix", "suffix", "contains"):
            return f"{name}={value}" if key == "exact" else f"{name}~{key}:{value}"
    return name


def _action(raw: dict) -> RouteAction:
    if "route" in raw:
        r = raw["route"] or {}
        retry = r.get("retry_policy")
        common = {"timeout": text(r, "timeout"), "retry": _retry(retry) if retry else None}
        if "cluster" in r:
            return RouteAction("cluster", cluster=text(r, "cluster"), **common)
        if "weighted_clusters" in r:
            weighted = tuple(
                (text(c, "name"), _weight(c.get("weight")))
                for _, c in elements(r["weighted_clusters"] or {}, "clusters")
            )
            return RouteAction("weighted_clusters", weighted_clusters=weighted, **common)
        if "cluster_header" in r:
            return RouteAction("cluster_header", cluster=text(r, "cluster_header"), **common)
        return RouteAction("other", **common)
    if "redirect" in raw:
        r = raw["redirect"] or {}
        target = (r.get("scheme_redirect", "") + "://" if r.get("scheme_redirect") else "") + \
            r.get("host_redirect", "") + (r.get("path_redirect") or r.get("prefix_rewrite") or "")
        code = {"MOVED_PERMANENTLY": 301, "FOUND": 302, "SEE_OTHER": 303,
                "TEMPORARY_REDIRECT": 307, "PERMANENT_REDIRECT": 308}
        return RouteAction("redirect", redirect=target, status=code.get(r.get("response_code"), 301))
    if "direct_response" in raw:
        status = (raw["direct_response"] or {}).get("status")
        return RouteAction("direct_response", status=int(status) if status is not None else None)
    return RouteAction("other")


def _weight(value) -> int:
    if isinstance(value, dict):  # v2/UInt32Value
        value = value.get("value")
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _retry(r: dict) -> RetryPolicy:
    n = r.get("num_retries")
    if isinstance(n, dict):
        n = n.get("value")
    return RetryPolicy(r.get("retry_on", ""), int(n) if n is not None else None,
                       r.get("per_try_timeout", ""))


@dataclasses.dataclass(frozen=True)
class RouteFilter:
    """`--name`: exact route configuration name."""

    name: str = ""

    def matches(self, config: RouteConfig) -> bool:
        return not self.name or config.name == self.name


def describe_domains(domains: tuple[str, ...]) -> str:
    """istioctl's DOMAINS cell: one domain as is; else the port-less ones, short forms
    preferred (`x` over `x.svc.cluster.local`), at most two then `+ N more...`."""
    if not domains:
        return ""
    if len(domains) == 1:
        return domains[0]
    no_port = [d for d in domains if ":" not in d or (d.count(":") > 2 and d.endswith("]"))]
    if len(no_port) < 2:  # the usual `host` + `host:*`: nothing to shorten
        return ", ".join(no_port)
    present = set(no_port)
    kept = [d for d in no_port
            if not any(d != d.removesuffix(s) and d.removesuffix(s) in present
                       for s in (".svc.cluster.local", ".svc"))]
    if len(kept) > 2:
        return f"{', '.join(kept[:2])} + {len(kept) - 2} more..."
    return ", ".join(kept)


def route_table(configs: list[RouteConfig], flt: RouteFilter = RouteFilter(),
                verbose: bool = True, wide: bool = False, rows: bool = True) -> Table:
    """istioctl's routes table; non-verbose is `NAME VIRTUAL HOSTS`; wide adds ACTION, TIMEOUT.
    Without `rows` only the data is selected (for -o json|yaml: a 194 MB dump's virtual
    hosts need not be parsed to be printed)."""
    selected = [c for c in configs if flt.matches(c)]
    # Numeric names (sidecar port routes like "80") first in numeric order, others as dumped.
    selected.sort(key=lambda c: (0, int(c.name)) if c.name.isdigit() else (1, 0))
    if not rows:
        return Table((), [], [c.raw for c in selected])
    if not verbose:
        rows = [(c.name, str(len(c.virtual_hosts))) for c in selected]
        return Table(("NAME", "VIRTUAL HOSTS"), rows, [c.raw for c in selected])
    headers = ("NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE")
    if wide:
        headers += ("ACTION", "TIMEOUT")
    rows = []
    for c in selected:
        for vh in c.virtual_hosts:
            domains = describe_domains(vh.domains)
            for r in vh.routes:
                if r.action.kind == "cluster" and r.action.cluster == PASSTHROUGH:
                    continue
                row = (c.name, vh.name, domains, r.match.describe(), r.virtual_service)
                rows.append(row + ((r.action.describe(), r.action.timeout) if wide else ()))
            if not vh.routes:
                rows.append((c.name, vh.name, domains, "/*", "404") + (("", "") if wide else ()))
    return Table(headers, rows, [c.raw for c in selected])
