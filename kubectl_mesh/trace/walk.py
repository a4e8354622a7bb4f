"""Walk one request through a proxy's config dump the way Envoy would:
listener → filter chain → route config → virtual host → route → cluster(s) → endpoints.
Pure: takes a ConfigDump (and optionally endpoints from `/clusters?format=json`), no I/O."""

from __future__ import annotations

from typing import Iterable, Mapping

from kubectl_mesh.configdump import Cluster, ConfigDump, Endpoint, parse_document
from kubectl_mesh.configdump.common import istio_config_ref
from kubectl_mesh.configdump.routes import parse_route_config
from kubectl_mesh.errors import BadInputError
from kubectl_mesh.trace import verdict as v
from kubectl_mesh.trace.listener import select_chain, select_listener
from kubectl_mesh.trace.match import (
    describe_route_match, find_virtual_host, route_matches, routing_host,
)
from kubectl_mesh.trace.request import TraceRequest
from kubectl_mesh.trace.upstream import (
    cluster_targets, describe_action, model_action, not_found_code,
)

__all__ = ["trace_request"]


def trace_request(dump: ConfigDump, request: TraceRequest, *,
                  port_map: Mapping[int, int] | None = None,
                  endpoints: Iterable[Endpoint] | None = None,
                  destination_ip: str | None = None,
                  route_config: str | None = None) -> v.TraceResult:
    """Trace `request` through `dump`.

    `port_map`: the gateway Service's port → targetPort (the URL's port is a Service port);
    `endpoints`: hosts with health (`ConfigDump(clusters_json).endpoints`), None = unchecked;
    `destination_ip`: the original destination IP for a sidecar (picks `<ip>_<port>`);
    `route_config`: start at this route config by name, skipping the listener (dumps
    without listeners)."""
    port = (port_map or {}).get(request.port, request.port)
    w = _Walk(dump, request, port, endpoints, destination_ip)
    if request.port != port:
        w.notes.append(f"port {request.port} is the Service port; the proxy listens on {port}")
    return w.run(route_config)


class _Walk:
    """The state of one walk: hops so far and notes; each step returns a result or None."""

    def __init__(self, dump, request, port, endpoints, destination_ip):
        self.dump = dump
        self.request = request
        self.port = port
        self.endpoints = None if endpoints is None else list(endpoints)
        self.destination_ip = destination_ip
        self.hops: list[v.Hop] = []
        self.notes: list[str] = []

    def result(self, outcome: str, answers=(), clusters=(), responsible: str = "",
               fixes=()) -> v.TraceResult:
        return v.TraceResult(self.request, self.port, outcome, tuple(self.hops), tuple(answers),
                             tuple(clusters), responsible, tuple(f for f in fixes if f),
                             tuple(self.notes))

    def run(self, route_config: str | None) -> v.TraceResult:
        if route_config is not None:
            self.notes.append(f"started at route config {route_config} (listener not traced)")
            return self.route_config(route_config, None, {})
        listeners = self.dump.listeners
        choice = select_listener(listeners, self.port, self.destination_ip)
        if choice is None:
            ports = sorted({l.port for l in listeners if l.port is not None})
            self.hops.append(v.Hop("listener", f"port {self.port}", "no listener", ok=False))
            return self.result(
                v.NO_LISTENER, [v.Answer(None, "", "connection refused")],
                responsible="Gateway",
                fixes=[f"nothing listens on port {self.port} (listener ports: "
                       f"{', '.join(map(str, ports)) or 'none'}) – add a server for port "
                       f"{self.request.port} to a Gateway that selects this proxy, and check the "
                       f"Service's targetPort"])
        listener = choice.listener
        where = f"{listener.address}:{listener.port}"
        self.hops.append(v.Hop("listener", listener.name, f"{where} {choice.via}".strip()))
        if choice.via and not self.destination_ip and listener.address in ("0.0.0.0", "::") \
                and listener.port == self.port:
            self.notes.append("destination IP unknown: assumed the wildcard listener for the port")
        transport = "tls" if self.request.scheme == "https" else "raw_buffer"
        alpn = ("h2", "http/1.1") if transport == "tls" else ("http/1.1",)
        chain = select_chain(listener, port=self.port, destination_ip=self.destination_ip,
                             sni=self.request.sni, transport=transport, alpn=alpn)
        if chain is None:
            self.hops.append(v.Hop("filter chain", "-", "no filter chain matches", ok=False))
            fix = (f"no filter chain of {listener.name} accepts SNI {self.request.sni!r} – add "
                   f"the host to the Gateway's TLS server hosts") if self.request.sni else \
                f"no filter chain of {listener.name} accepts this connection"
            return self.result(v.NO_FILTER_CHAIN, [v.Answer(None, "", "connection closed")],
                               responsible="Gateway", fixes=[fix])
        label = chain.name or (f"#{chain.index}" if chain.index >= 0 else "default")
        self.hops.append(v.Hop("filter chain", label, _chain_detail(chain.raw, chain.kind)))
        if chain.kind == "tcp":
            return self.tcp(chain.tcp)
        if chain.kind != "http":
            return self.result(v.UNSUPPORTED, fixes=[f"filter chain {label} is neither HTTP nor "
                                                     "TCP proxy; the tracer stops here"])
        hcm = chain.hcm
        if hcm.get("route_config") is not None:
            return self.route_config(None, parse_route_config(hcm["route_config"]).raw, hcm)
        rds = (hcm.get("rds") or {}).get("route_config_name")
        if not rds:
            return self.result(v.UNSUPPORTED, fixes=["the HTTP connection manager uses scoped "
                                                     "routes or no routes; not traced"])
        return self.route_config(rds, None, hcm)

    def route_config(self, name: str | None, raw: dict | None, hcm: dict) -> v.TraceResult:
        if raw is None:
            found = next((rc for rc in self.dump.routes if rc.name == name), None)
            if found is None:
                self.hops.append(v.Hop("route config", name or "", "not in RDS", ok=False))
                return self.result(
                    v.NO_ROUTE, [v.Answer(404, "NR", "route_not_found")],
                    fixes=[f"route config {name} was never received (RDS) – check "
                           "proxy-status for this proxy"])
            raw = found.raw
            self.hops.append(v.Hop("route config", found.name, "RDS"))
        else:
            self.hops.append(v.Hop("route config", raw.get("name", "") or "(inline)", "inline"))
        vhosts = list(raw.get("virtual_hosts") or ())
        host = routing_host(self.request.host, raw, hcm, self.port)
        dm = find_virtual_host(vhosts, host)
        rc_name = raw.get("name", "") or "(inline)"
        if dm is None:
            self.hops.append(v.Hop("virtual host", "-", f"no domain matches {host!r}", ok=False))
            domains = [d for vh in vhosts for d in vh.get("domains") or ()]
            services = _services(vhosts)
            return self.result(
                v.NO_ROUTE, [v.Answer(404, "NR", "route_not_found")],
                responsible=", ".join(f"VirtualService {s}" for s in services) or "Gateway",
                fixes=[v.fix_no_virtual_host(host, rc_name, domains)])
        vhost = vhosts[dm.index]
        self.hops.append(v.Hop("virtual host", vhost.get("name", ""),
                               f"{dm.rule} domain {dm.domain!r} for host {host!r}"))
        return self.route(vhost)

    def route(self, vhost: dict) -> v.TraceResult:
        routes = list(vhost.get("routes") or ())
        for i, r in enumerate(routes):
            matched, _ = route_matches(r.get("match") or {}, self.request)
            if matched:
                break
        else:
            self.hops.append(v.Hop("route", "-", f"none of {len(routes)} routes matches",
                                   ok=False))
            services = _services([vhost])
            described = [f"#{i} {describe_route_match(r.get('match') or {})}"
                         for i, r in enumerate(routes)]
            return self.result(
                v.NO_ROUTE, [v.Answer(404, "NR", "route_not_found")],
                responsible=", ".join(f"VirtualService {s}" for s in services),
                fixes=[v.fix_no_route(self.request, vhost.get("name", ""), described, services)])
        vs = istio_config_ref(r.get("metadata"))
        name = f"#{i}" + (f" {r['name']}" if r.get("name") else "")
        detail = describe_route_match(r.get("match") or {}) + " → " + describe_action(r, vhost)
        if vs:
            detail += f"  (VirtualService {vs})"
        self.hops.append(v.Hop("route", name, detail))
        responsible = v.istio_object("VirtualService", vs)
        if "direct_response" in r:
            dr = r["direct_response"] or {}
            status = int(dr.get("status", 0) or 0)
            body = ((dr.get("body") or {}).get("inline_string") or "").strip()
            details = "direct_response" + (f" {body[:60]!r}" if body else "")
            return self.result(v.DIRECT_RESPONSE, [v.Answer(status, "", details)],
                               responsible=responsible)
        if "redirect" in r:
            action = model_action(r)
            return self.result(v.REDIRECT, [v.Answer(action.status, "",
                                                     f"redirect to {action.redirect or '(same)'}")],
                               responsible=responsible)
        action = r.get("route") or {}
        if "cluster_header" in action or "cluster_specifier_plugin" in action:
            return self.result(v.UNSUPPORTED, responsible=responsible,
                               fixes=["the cluster is chosen per request (cluster_header or a "
                                      "plugin); not traced"])
        return self.upstream(action, vs, not_found_code(action))

    def tcp(self, tcp: dict) -> v.TraceResult:
        names = [(tcp["cluster"], 1)] if tcp.get("cluster") else [
            (c.get("name", ""), c.get("weight", 1))
            for c in (tcp.get("weighted_clusters") or {}).get("clusters") or ()]
        if len(names) == 1 and names[0][0] in ("BlackHoleCluster", "PassthroughCluster"):
            outcome = v.BLACKHOLE if names[0][0] == "BlackHoleCluster" else v.PASSTHROUGH
            self.hops.append(v.Hop("cluster", names[0][0], "TCP", ok=outcome == v.PASSTHROUGH))
            if outcome == v.BLACKHOLE:
                return self.result(outcome, [v.Answer(None, "", "connection reset (BlackHoleCluster)")],
                                   fixes=["the destination is not in the mesh registry and "
                                          "outboundTrafficPolicy is REGISTRY_ONLY – add a "
                                          "ServiceEntry for it"])
            return self.result(outcome)
        return self.upstream({"weighted_clusters": {"clusters": [
            {"name": n, "weight": w} for n, w in names]}}, "", None, tcp=True)

    def upstream(self, action: dict, vs: str, nc_code: int | None, tcp: bool = False):
        if action.get("cluster") in ("PassthroughCluster", "BlackHoleCluster"):
            # Istio's allow_any / block_all: the destination is not a known service.
            name = action["cluster"]
            self.hops.append(v.Hop("cluster", name, "destination not in the mesh registry",
                                   ok=name == "PassthroughCluster"))
            if name == "PassthroughCluster":
                self.notes.append("no virtual host for this host: the request leaves the mesh "
                                  "as is to its original destination (outboundTrafficPolicy "
                                  "ALLOW_ANY)")
                return self.result(v.PASSTHROUGH)
            return self.result(v.BLACKHOLE, [v.Answer(nc_code or 503, "", "BlackHoleCluster")],
                               fixes=["outboundTrafficPolicy is REGISTRY_ONLY and no Service or "
                                      "ServiceEntry gives this host – add a ServiceEntry"])
        clusters_by_name = self._clusters()
        targets = cluster_targets(action, clusters_by_name, self.endpoints)
        for t in targets:
            status = t.status
            detail = f"{t.share:g}%  {status}"
            if t.endpoints is not None:
                detail += f"  {t.healthy}/{len(t.endpoints)} healthy endpoints"
            if t.destination_rule:
                detail += f"  (DestinationRule {t.destination_rule})"
            self.hops.append(v.Hop("cluster", t.name, detail,
                                   ok=status in ("ok", "unchecked", "panic")))
            if status == "panic":
                self.notes.append(f"{t.name}: no healthy endpoint; panic routing sends traffic to "
                                  "all of them (healthy_panic_threshold is not 0)")
            if status == "unchecked":
                self.notes.append("the input has no clusters section: clusters not checked")
        if self.endpoints is None:
            self.notes.append("endpoint health not checked (no /clusters data given)")
        missing = [t for t in targets if t.status in ("missing", "warming") and t.share > 0]
        unhealthy = [t for t in targets if t.status == "no_healthy_upstream" and t.share > 0]
        answers, fixes, who = [], [], []
        if missing:
            share = sum(t.share for t in missing)
            answers.append(v.Answer(None if tcp else nc_code or 503, "NC",
                                    "connection reset (no cluster)" if tcp else "cluster_not_found",
                                    share))
            fixes += [v.fix_missing_cluster(t.name, vs) for t in missing]
            who.append(v.istio_object("VirtualService", vs))
        if unhealthy:
            share = sum(t.share for t in unhealthy)
            answers.append(v.Answer(None if tcp else 503, "UH", "no_healthy_upstream", share))
            fixes += [v.fix_unhealthy_cluster(t) for t in unhealthy]
            who += [v.istio_object("DestinationRule", t.destination_rule) for t in unhealthy]
        failing = sum(a.share for a in answers)
        if not answers:
            outcome = v.TCP_PROXY if tcp else v.ROUTED
        elif failing < 100 - 1e-9:
            outcome = v.PARTIAL
        else:
            outcome = v.NO_CLUSTER if missing else v.NO_HEALTHY_UPSTREAM
        responsible = ", ".join(dict.fromkeys(w for w in who if w))
        return self.result(outcome, answers, targets, responsible, fixes)

    def _clusters(self) -> dict[str, Cluster] | None:
        if not self.dump.has("clusters"):
            return None
        out: dict[str, Cluster] = {}
        for c in self.dump.clusters:  # active before warming: keep the first
            out.setdefault(c.name, c)
        return out


def _services(vhosts: list[dict]) -> list[str]:
    refs = (istio_config_ref(r.get("metadata")) for vh in vhosts for r in vh.get("routes") or ())
    return list(dict.fromkeys(r for r in refs if r and r != "<unknown>"))


def _chain_detail(raw: dict, kind: str) -> str:
    m = raw.get("filter_chain_match") or {}
    parts = []
    if m.get("server_names"):
        parts.append("SNI " + ",".join(m["server_names"]))
    if m.get("transport_protocol"):
        parts.append(m["transport_protocol"])
    if m.get("application_protocols"):
        parts.append("ALPN " + ",".join(m["application_protocols"]))
    return (", ".join(parts) or "match all") + f" → {kind}"


def load_endpoints(data: bytes | str, source: str) -> list[Endpoint]:
    """`/clusters?format=json` text → endpoints (a convenience for callers and tests)."""
    dump = ConfigDump(parse_document(data, source), source)
    if not dump.has("endpoints"):
        raise BadInputError(f"{source} has no endpoints; expected /clusters?format=json")
    return dump.endpoints
