"""Which listener and filter chain a connection lands on, and what that chain does with it.

Gateways bind their listeners (`0.0.0.0_8080`). Sidecars capture outbound traffic with
iptables into `virtualOutbound` (15001, `use_original_dst`), which hands the connection to
the listener for the original destination – `<ip>_<port>` first, then `0.0.0.0_<port>`, both
`bind_to_port: false` – or handles it itself (PassthroughCluster / BlackHoleCluster).
"""

from __future__ import annotations

import dataclasses
import ipaddress

from kubectl_mesh.configdump import Listener
from kubectl_mesh.configdump.common import as_int, type_name, typed_config

_HCM = {"envoy.filters.network.http_connection_manager", "envoy.http_connection_manager"}
_TCP = {"envoy.filters.network.tcp_proxy", "envoy.tcp_proxy"}
_WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")


@dataclasses.dataclass(frozen=True)
class ListenerChoice:
    listener: Listener
    via: str  # "" (bound on the port) or how virtualOutbound handed it over


@dataclasses.dataclass(frozen=True)
class ChainChoice:
    """The selected filter chain (raw dict) and what its terminal filter is."""

    name: str
    index: int  # position in filter_chains; -1 for the default_filter_chain
    raw: dict
    kind: str  # http | tcp | other
    hcm: dict  # the HttpConnectionManager config (http)
    tcp: dict  # the TcpProxy config (tcp)


def binds_to_port(raw: dict) -> bool:
    """`bind_to_port` (v3 BoolValue, or v2 `deprecated_v1.bind_to_port`); default true."""
    value = raw.get("bind_to_port")
    if value is None:
        value = (raw.get("deprecated_v1") or {}).get("bind_to_port")
    if isinstance(value, dict):
        value = value.get("value", True)
    return True if value is None else bool(value)


def is_virtual_outbound(listener: Listener) -> bool:
    raw = listener.raw
    original_dst = raw.get("use_original_dst")
    if isinstance(original_dst, dict):
        original_dst = original_dst.get("value")
    return bool(original_dst) or listener.name in ("virtualOutbound", "virtual")


def select_listener(listeners: list[Listener], port: int,
                    destination_ip: str | None = None) -> ListenerChoice | None:
    """The listener a connection to `port` (and `destination_ip`, when known) reaches."""
    live = [l for l in listeners if l.state in ("active", "static")]
    for l in live:
        if l.port == port and binds_to_port(l.raw) and not is_virtual_outbound(l):
            return ListenerChoice(l, "")
    outbound = next((l for l in live if is_virtual_outbound(l)), None)
    # A trimmed dump may lack virtualOutbound; unbound listeners still mean iptables capture.
    via = outbound.name if outbound is not None else "iptables capture"
    unbound = [l for l in live if l.port == port and not binds_to_port(l.raw)]
    if destination_ip:
        for l in unbound:
            if destination_ip in l.addresses:
                return ListenerChoice(l, f"{via} → {l.name} (original destination)")
    for l in unbound:
        if l.address in _WILDCARD_ADDRESSES:
            return ListenerChoice(l, f"{via} → {l.name} (original destination port)")
    if outbound is None:
        return None
    return ListenerChoice(outbound, f"{outbound.name} (no listener for port {port})")


def select_chain(listener: Listener, *, port: int, destination_ip: str | None, sni: str,
                 transport: str, alpn: tuple[str, ...]) -> ChainChoice | None:
    """Envoy's filter chain selection: criteria in order (destination port, destination IP,
    server name, transport protocol, application protocols); at each step the most specific
    matching chains survive, else those that leave the criterion empty."""
    raw = listener.raw
    chains = list(raw.get("filter_chains") or ())
    default = raw.get("default_filter_chain")
    if raw.get("filter_chain_matcher"):
        name = _evaluate_matcher(raw["filter_chain_matcher"], {
            "destination_port": str(port), "destination_ip": destination_ip or "",
            "server_name": sni, "transport_protocol": transport,
            "application_protocol": ",".join(f"'{p}'" for p in alpn)})
        for i, fc in enumerate(chains):
            if name is not None and fc.get("name", "") == name:
                return _choice(fc, i)
        return _choice(default, -1) if default else None
    candidates = list(enumerate(chains))
    steps = (
        lambda m: _port_rank(m, port),
        lambda m: _ip_rank(m, destination_ip),
        lambda m: _sni_rank(m, sni),
        lambda m: _equal_rank(m.get("transport_protocol"), transport),
        lambda m: _alpn_rank(m, alpn),
    )
    for rank in steps:
        scored = [(rank(fc.get("filter_chain_match") or {}), i, fc) for i, fc in candidates]
        scored = [s for s in scored if s[0] is not None]
        if not scored:
            candidates = []
            break
        best = max(s[0] for s in scored)
        candidates = [(i, fc) for r, i, fc in scored if r == best]
    if candidates:
        return _choice(candidates[0][1], candidates[0][0])
    return _choice(default, -1) if default else None


def _choice(fc: dict, index: int) -> ChainChoice:
    hcm: dict = {}
    tcp: dict = {}
    kind = "other"
    for f in fc.get("filters") or ():
        tname = type_name((f.get("typed_config") or {}).get("@type"))
        if f.get("name") in _HCM or tname == "HttpConnectionManager":
            kind, hcm = "http", typed_config(f)
            break
        if f.get("name") in _TCP or tname == "TcpProxy":
            kind, tcp = "tcp", typed_config(f)
            break
    return ChainChoice(fc.get("name", ""), index, fc, kind, hcm, tcp)


# Each rank returns None (chain excluded), 0 (criterion empty) or a positive specificity.

def _port_rank(m: dict, port: int) -> int | None:
    want = as_int(m.get("destination_port"))
    return 0 if want is None else 1 if want == port else None


def _ip_rank(m: dict, ip: str | None) -> int | None:
    ranges = m.get("prefix_ranges") or ()
    if not ranges:
        return 0
    if not ip:
        return None  # unknown destination IP: only chains that do not ask for one
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    best = None
    for r in ranges:
        try:
            net = ipaddress.ip_network(
                f"{r.get('address_prefix', '')}/{as_int(r.get('prefix_len')) or 0}", strict=False)
        except ValueError:
            continue
        if addr.version == net.version and addr in net:
            best = max(best or 0, net.prefixlen + 1)
    return best


def _sni_rank(m: dict, sni: str) -> int | None:
    names = m.get("server_names") or ()
    if not names:
        return 0
    best = None
    for n in names:
        n = n.lower()
        if n == sni:
            return 10_000
        if n.startswith("*.") and sni.endswith(n[1:]):
            best = max(best or 0, len(n))
    return best


def _equal_rank(want: str | None, have: str) -> int | None:
    return 0 if not want else 1 if want == have else None


def _alpn_rank(m: dict, alpn: tuple[str, ...]) -> int | None:
    want = m.get("application_protocols") or ()
    return 0 if not want else 1 if set(want) & set(alpn) else None


def _evaluate_matcher(matcher: dict, inputs: dict[str, str]) -> str | None:
    """A listener `filter_chain_matcher` (xds.type.matcher.v3.Matcher tree) → chain name."""
    tree = matcher.get("matcher_tree") or {}
    input_type = type_name(((tree.get("input") or {}).get("typed_config") or {}).get("@type"))
    key = {"DestinationPortInput": "destination_port", "DestinationIPInput": "destination_ip",
           "ServerNameInput": "server_name", "TransportProtocolInput": "transport_protocol",
           "ApplicationProtocolInput": "application_protocol"}.get(input_type, "")
    value = inputs.get(key, "")
    on_match = None
    exact = (tree.get("exact_match_map") or {}).get("map") or {}
    if value in exact:
        on_match = exact[value]
    prefixes = (tree.get("prefix_match_map") or {}).get("map") or {}
    if on_match is None:
        for p in sorted(prefixes, key=len, reverse=True):
            if value.startswith(p):
                on_match = prefixes[p]
                break
    custom = (tree.get("custom_match") or {}).get("typed_config") or {}
    if on_match is None and value:
        best = -1
        for rm in custom.get("range_matchers") or ():
            rank = _ip_rank({"prefix_ranges": rm.get("ranges") or ()}, value)
            if rank is not None and rank > best:
                best, on_match = rank, rm.get("on_match") or {}
    if on_match is not None:
        result = _on_match(on_match, inputs)
        if result is not None:
            return result
    no_match = matcher.get("on_no_match")
    return _on_match(no_match, inputs) if no_match else None


def _on_match(on_match: dict, inputs: dict[str, str]) -> str | None:
    if on_match.get("matcher"):
        return _evaluate_matcher(on_match["matcher"], inputs)
    action = on_match.get("action") or {}
    return (typed_config(action).get("value") if action.get("typed_config") else None) \
        or action.get("name")
