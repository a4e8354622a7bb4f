"""Listeners: ListenersConfigDump model (all states), filter and the listeners table."""

from __future__ import annotations

import dataclasses

from kubectl_mesh.configdump.common import Table, as_int, socket_address, type_name, typed_config
from kubectl_mesh.configdump.keys import normalise
from kubectl_mesh.configdump.shape import (
    SHAPE_ERRORS, Malformed, elements, relative, text, texts,
)
from kubectl_mesh.configdump.routes import parse_route_config

_HCM = {"envoy.filters.network.http_connection_manager", "envoy.http_connection_manager"}
_TCP = {"envoy.filters.network.tcp_proxy", "envoy.tcp_proxy"}
BLACKHOLE = "BlackHoleCluster"
LISTENER_TYPES = ("HTTP", "TCP", "HTTP+TCP", "UNKNOWN")

# Istio's well-known ALPN sets, shown by name (istioctl's wording).
_ALPN_NAMES = {
    ("http/1.0", "http/1.1", "h2c", "istio-http/1.0", "istio-http/1.1", "istio-h2"): "App: HTTP TLS",
    ("istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"): "App: Istio HTTP Plain",
    ("istio-peer-exchange", "istio"): "App: TCP TLS",
    ("http/1.0", "http/1.1", "h2c"): "App: HTTP",
}


@dataclasses.dataclass(frozen=True)
class ChainMatch:
    server_names: tuple[str, ...] = ()
    transport_protocol: str = ""
    application_protocols: tuple[str, ...] = ()
    prefix_ranges: tuple[str, ...] = ()  # "cidr/len"
    destination_port: int | None = None

    def describe(self) -> str:
        """istioctl's MATCH cell: `SNI:`, `Trans:`, `App:`, `Addr:` joined by `; `, or ALL."""
        parts = []
        if self.server_names:
            parts.append("SNI: " + ",".join(self.server_names))
        if self.transport_protocol:
            parts.append("Trans: " + self.transport_protocol)
        if self.application_protocols:
            parts.append(_ALPN_NAMES.get(self.application_protocols)
                         or "App: " + ",".join(self.application_protocols))
        port = f":{self.destination_port}" if self.destination_port is not None else ""
        if self.prefix_ranges:
            parts.append(f"Addr: {','.join(self.prefix_ranges)}{port}")
        elif port:
            parts.append(f"Addr: *{port}")
        return "; ".join(parts) or "ALL"


@dataclasses.dataclass(frozen=True)
class Destination:
    kind: str  # route (RDS) | inline_route | cluster | http | non_http
    value: str = ""  # RDS name, cluster name(s), or the inline route summary

    def describe(self) -> str:
        """istioctl's DESTINATION cell."""
        if self.kind == "route":
            return f"Route: {self.value}"
        if self.kind == "inline_route":
            return self.value  # already `Cluster: x` or `Inline Route: ...`
        if self.kind == "cluster":
            return self.value if "Cluster" in self.value else f"Cluster: {self.value}"
        if self.kind == "http":
            return "HTTP"
        return "Non-HTTP/Non-TCP"


@dataclasses.dataclass(frozen=True)
class FilterChain:
    name: str
    match: ChainMatch
    destination: Destination
    http: bool  # has an HTTP connection manager
    tcp: bool  # has a tcp_proxy not pointing at the BlackHoleCluster
    matcher: tuple[str, ...] = ()  # paths in the listener's filter_chain_matcher that pick it
    default: bool = False  # the listener's default_filter_chain

    def describe_match(self) -> str:
        if self.matcher and self.match == ChainMatch():
            return " | ".join(self.matcher)
        return self.match.describe()


@dataclasses.dataclass(frozen=True)
class Listener:
    name: str
    address: str
    port: int | None
    additional_addresses: tuple[str, ...]
    filter_chains: tuple[FilterChain, ...]
    state: str  # static | active | warming | draining | error
    version_info: str
    last_updated: str
    error: str  # error_state.details for a rejected update
    raw: dict = dataclasses.field(repr=False, compare=False)

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.address,) + self.additional_addresses

    @property
    def type(self) -> str:
        """HTTP, TCP, HTTP+TCP or UNKNOWN, counted over all filter chains as istioctl does."""
        http = any(fc.http for fc in self.filter_chains)
        tcp = any(fc.tcp for fc in self.filter_chains)
        return "HTTP+TCP" if http and tcp else "HTTP" if http else "TCP" if tcp else "UNKNOWN"


def parse_listeners(section: dict, at=relative) -> list[Listener]:
    """ListenersConfigDump → listeners: dynamic (one per present state) then static;
    Malformed names the JSON path (`at(field, i)`) of a wrongly shaped one."""
    out = []
    for path, item in elements(section, "dynamic_listeners", at):
        try:
            item = normalise(item)
            for field, state in (("active_state", "active"), ("warming_state", "warming"),
                                 ("draining_state", "draining")):
                st = item.get(field)
                if st and st.get("listener"):
                    out.append(_listener(st["listener"], state, text(st, "version_info"),
                                         text(st, "last_updated"), where=f"{field}.listener"))
            err = item.get("error_state")
            if err and not item.get("active_state"):
                failed = err.get("failed_configuration") or {"name": text(item, "name")}
                out.append(_listener(failed, "error", "", text(err, "last_update_attempt"),
                                     text(err, "details"),
                                     where="error_state.failed_configuration"))
        except (Malformed, *SHAPE_ERRORS) as e:
            raise Malformed.of(path, e) from e
    for path, item in elements(section, "static_listeners", at):
        try:
            item = normalise(item)
            if item.get("listener"):
                out.append(_listener(item["listener"], "static", "",
                                     text(item, "last_updated")))
        except (Malformed, *SHAPE_ERRORS) as e:
            raise Malformed.of(path, e) from e
    return out


def _listener(raw: dict, state: str, version: str, updated: str, error: str = "",
              where: str = "listener") -> Listener:
    address, port = socket_address(raw.get("address"))
    extra = tuple(socket_address(a.get("address"))[0]
                  for _, a in elements(raw, "additional_addresses"))
    chains = [(path, fc) for path, fc in elements(raw, "filter_chains")]
    default = raw.get("default_filter_chain")
    matcher = raw.get("filter_chain_matcher")
    parsed = []
    for i, (path, fc) in enumerate(chains + ([("default_filter_chain", default)] if default else [])):
        try:
            paths = ()
            if matcher:
                paths = tuple(_matcher_paths(matcher, text(fc, "name"), top=True)) or ("NONE",)
            parsed.append(_chain(fc, paths, default=bool(default) and i == len(chains)))
        except (Malformed, *SHAPE_ERRORS) as e:
            raise Malformed.of(f"{where}.{path}", e) from e
    return Listener(text(raw, "name"), address, port, extra, tuple(parsed), state,
                    version, updated, error, raw)


def _chain(fc: dict, matcher: tuple[str, ...], default: bool) -> FilterChain:
    m = fc.get("filter_chain_match") or {}
    ranges = tuple(f"{r.get('address_prefix', '')}/{as_int(r.get('prefix_len')) or 0}"
                   for r in m.get("prefix_ranges") or ())
    match = ChainMatch(texts(m, "server_names"), text(m, "transport_protocol"),
                       texts(m, "application_protocols"), ranges,
                       as_int(m.get("destination_port")))
    http = tcp = False
    destination = None
    for path, f in elements(fc, "filters"):
        try:
            kind = _filter_kind(f)
            if kind == "http":
                http = True
                destination = destination or _http_destination(typed_config(f))
            elif kind == "tcp":
                cluster = _tcp_cluster(typed_config(f))
                if BLACKHOLE not in cluster:
                    tcp = True
                    destination = destination or Destination("cluster", cluster)
        except (Malformed, *SHAPE_ERRORS) as e:
            raise Malformed.of(f"{path}.typed_config", e) from e
    return FilterChain(text(fc, "name"), match, destination or Destination("non_http"),
                       http, tcp, matcher, default)


def _filter_kind(f: dict) -> str:
    name = f.get("name", "")
    tname = type_name((f.get("typed_config") or {}).get("@type"))
    if name in _HCM or tname == "HttpConnectionManager":
        return "http"
    if name in _TCP or tname == "TcpProxy":
        return "tcp"
    return ""


def _http_destination(hcm: dict) -> Destination:
    if hcm.get("route_config") is not None:
        return Destination("inline_route", describe_inline_route(hcm["route_config"]))
    rds = text(hcm.get("rds") or {}, "route_config_name")
    if rds:
        return Destination("route", rds)
    return Destination("http")


def _tcp_cluster(tcp: dict) -> str:
    if tcp.get("cluster"):
        return text(tcp, "cluster")
    weighted = [c for _, c in elements(tcp.get("weighted_clusters") or {}, "clusters")]
    if weighted:
        return ",".join(text(c, "name") for c in weighted)
    routes = elements(tcp.get("route_config") or {}, "routes")  # v1 "deprecated_v1" form
    return ",".join(text(r, "cluster") for _, r in routes)


def describe_inline_route(raw: dict) -> str:
    """`Cluster: x` for a single match-all route, else `Inline Route: <domains> <matches>; ...`."""
    rc = parse_route_config(normalise(raw), where="route_config")
    if len(rc.virtual_hosts) == 1 and rc.virtual_hosts[0].domains == ("*",):
        routes = rc.virtual_hosts[0].routes
        if len(routes) == 1 and routes[0].match.kind == "prefix" and routes[0].match.value == "/" \
                and routes[0].action.kind == "cluster":
            c = routes[0].action.cluster
            return c if "Cluster" in c else f"Cluster: {c}"
    parts = []
    for vh in rc.virtual_hosts:
        matches = ", ".join(r.match.describe() for r in vh.routes)
        domains = "" if vh.domains == ("*",) else "/".join(vh.domains)
        parts.append(f"{domains} {matches}" if domains else matches)
    return "Inline Route: " + "; ".join(parts)


def _matcher_paths(matcher: dict, chain: str, top: bool = False) -> list[str]:
    """Descriptions of the ways a filter_chain_matcher tree selects the chain named `chain`."""
    out = []
    tree = matcher.get("matcher_tree") or {}
    label = (tree.get("input") or {}).get("name", "")
    entries: list[tuple[str, str, dict]] = []
    for kind, eq in (("exact_match_map", "="), ("prefix_match_map", "^")):
        for key, on_match in ((tree.get(kind) or {}).get("map") or {}).items():
            entries.append((eq, key, on_match))
    custom = (tree.get("custom_match") or {}).get("typed_config") or {}
    for rm in custom.get("range_matchers") or ():
        for r in rm.get("ranges") or ():
            plen = as_int(r.get("prefix_len"))
            cidr = r.get("address_prefix", "") + ("" if plen in (None, 32, 128) else f"/{plen}")
            entries.append(("=", cidr, rm.get("on_match") or {}))
    for eq, key, on_match in entries:
        if (on_match.get("action") or {}).get("name") == chain:
            out.append(f"{label}{eq}{key}")
        elif on_match.get("matcher"):
            out.extend(f"{label}{eq}{key} -> {child}"
                       for child in _matcher_paths(on_match["matcher"], chain))
    no_match = matcher.get("on_no_match") or {}
    if (no_match.get("action") or {}).get("name") == chain:
        out.append("UNMATCHED" if top else "ANY")
    elif no_match.get("matcher"):
        out.extend(_matcher_paths(no_match["matcher"], chain))
    return out


@dataclasses.dataclass(frozen=True)
class ListenerFilter:
    """istioctl semantics: address equals one of the listener's addresses (case-insensitive),
    port equals, type (HTTP|TCP|HTTP+TCP) equals case-insensitively."""

    address: str = ""
    port: int = 0
    type: str = ""

    def matches(self, listener: Listener) -> bool:
        if self.address and self.address.lower() not in (a.lower() for a in listener.addresses):
            return False
        if self.port and listener.port != self.port:
            return False
        return not self.type or listener.type.lower() == self.type.lower()


def listener_table(listeners: list[Listener], flt: ListenerFilter = ListenerFilter(),
                   verbose: bool = True, wide: bool = False) -> Table:
    """`ADDRESSES PORT MATCH DESTINATION` (one row per filter chain), or non-verbose
    `ADDRESSES PORT TYPE`; wide adds NAME and STATE. Draining copies are left out."""
    selected = [l for l in listeners if l.state != "draining" and flt.matches(l)]
    selected.sort(key=lambda l: (l.port or 0, l.address, l.type))
    rows = []
    for l in selected:
        lead = (",".join(l.addresses), str(l.port) if l.port is not None else "0")
        extra = (l.name, l.state) if wide else ()
        if not verbose:
            rows.append(lead + (l.type,) + extra)
            continue
        # istioctl orders chains by DESTINATION, descending; sorted() is stable.
        for fc in sorted(l.filter_chains, key=lambda fc: fc.destination.describe(), reverse=True):
            rows.append(lead + (fc.describe_match(), fc.destination.describe()) + extra)
    headers = ("ADDRESSES", "PORT") + (("MATCH", "DESTINATION") if verbose else ("TYPE",))
    headers += ("NAME", "STATE") if wide else ()
    return Table(headers, rows, [l.raw for l in selected], gap=1)
