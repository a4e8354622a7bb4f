"""The trace result: the hops walked, what Envoy answers at the first break, who is
responsible (the Istio object) and the likely fix in Istio terms."""

from __future__ import annotations

import dataclasses
import difflib

from kubectl_mesh.configdump import ClusterName
from kubectl_mesh.trace.request import TraceRequest

# Outcomes. OK_OUTCOMES map to exit code 0; everything else is a finding (ExitCode.FINDINGS).
ROUTED = "routed"  # reaches upstream cluster(s) with healthy endpoints (or unchecked)
REDIRECT = "redirect"
DIRECT_RESPONSE = "direct_response"
PASSTHROUGH = "passthrough"  # sidecar: no listener for the port, PassthroughCluster (ALLOW_ANY)
TCP_PROXY = "tcp_proxy"  # not HTTP: the chain proxies TCP to a cluster
NO_LISTENER = "no_listener"  # connection refused
NO_FILTER_CHAIN = "no_filter_chain"  # connection closed
BLACKHOLE = "blackhole"  # REGISTRY_ONLY: BlackHoleCluster
NO_ROUTE = "no_route"  # 404 NR (no virtual host, or no route in it)
NO_CLUSTER = "no_cluster"  # 503 NC for every request
NO_HEALTHY_UPSTREAM = "no_healthy_upstream"  # 503 UH for every request
PARTIAL = "partial"  # some share of requests fails (weighted clusters)
UNSUPPORTED = "unsupported"  # something the tracer cannot follow (cluster_header, ...)
OK_OUTCOMES = frozenset({ROUTED, REDIRECT, PASSTHROUGH, TCP_PROXY})


@dataclasses.dataclass(frozen=True)
class Hop:
    """One step of the chain: `stage` (listener, filter chain, route config, virtual host,
    route, cluster), the object's name, what decided it, and whether the walk could go on."""

    stage: str
    name: str
    detail: str = ""
    ok: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class EndpointState:
    address: str  # `ip:port`
    health: str  # eds health status
    outlier_failed: bool | None
    healthy: bool  # counts as healthy for load balancing

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ClusterTarget:
    """A cluster the matched route sends to, with its share of the requests."""

    name: str
    share: float  # percent of the route's requests
    exists: bool | None  # None: the input has no CDS section
    type: str = ""
    state: str = ""  # active | static | warming
    destination_rule: str = ""  # `name.ns`
    endpoints: tuple[EndpointState, ...] | None = None  # None: not checked
    panic_threshold: float = 50.0

    @property
    def healthy(self) -> int:
        return sum(1 for e in self.endpoints or () if e.healthy)

    @property
    def status(self) -> str:
        """ok | missing | warming | no_healthy_upstream | panic | unchecked."""
        if self.exists is None:
            return "unchecked"
        if not self.exists:
            return "missing"
        if self.state == "warming":
            return "warming"
        if self.endpoints is None:
            return "ok"
        if not self.endpoints:
            return "no_healthy_upstream"
        if self.healthy == 0:
            # Envoy load-balances across all hosts below the panic threshold (Istio sets 0).
            return "panic" if self.panic_threshold > 0 else "no_healthy_upstream"
        return "ok"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["status"] = self.status
        d["healthy_endpoints"] = self.healthy
        if self.endpoints is not None:
            d["endpoints"] = [e.to_dict() for e in self.endpoints]
        return d


@dataclasses.dataclass(frozen=True)
class Answer:
    """What Envoy answers: HTTP status (None: no HTTP response), response flag, details,
    for what share of requests."""

    status: int | None
    flag: str = ""
    details: str = ""
    share: float = 100.0

    def describe(self) -> str:
        if self.status is None:
            text = self.details
        else:
            text = " ".join(p for p in (str(self.status), self.flag, self.details) if p)
        return text if self.share >= 100.0 else f"{text} for {_pct(self.share)} of requests"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TraceResult:
    request: TraceRequest
    port: int  # the port the proxy sees (after the Service's port→targetPort mapping)
    outcome: str
    hops: tuple[Hop, ...]
    answers: tuple[Answer, ...] = ()  # failures first; empty when routed cleanly
    clusters: tuple[ClusterTarget, ...] = ()
    responsible: str = ""  # `VirtualService name.ns`, `DestinationRule name.ns`, ...
    fixes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # caveats: assumptions the walk had to make

    @property
    def ok(self) -> bool:
        """The request gets through (exit code 0); else the CLI raises FindingsError."""
        if self.outcome == DIRECT_RESPONSE:
            return all(a.status is not None and a.status < 400 for a in self.answers)
        return self.outcome in OK_OUTCOMES

    def to_dict(self) -> dict:
        return {
            "request": self.request.to_dict(), "port": self.port, "outcome": self.outcome,
            "ok": self.ok, "hops": [h.to_dict() for h in self.hops],
            "answers": [a.to_dict() for a in self.answers],
            "clusters": [c.to_dict() for c in self.clusters],
            "responsible": self.responsible, "fixes": list(self.fixes),
            "notes": list(self.notes),
        }


def _pct(share: float) -> str:
    return f"{share:.0f}%" if share == int(share) else f"{share:.1f}%"


def istio_object(kind: str, ref: str) -> str:
    """`VirtualService x.ns` from a `name.ns` ref; '' if there is none."""
    return f"{kind} {ref}" if ref and ref != "<unknown>" else ""


def fix_missing_cluster(cluster: str, virtual_service: str) -> str:
    """Why a route's cluster is not in CDS, in Istio terms."""
    n = ClusterName.parse(cluster)
    vs = f"VirtualService {virtual_service}" if virtual_service else "the VirtualService"
    if n.is_istio and n.direction == "inbound":
        return (f"inbound cluster {cluster} is missing – istiod generated no inbound cluster for "
                f"port {n.port} of this workload (check the Service's targetPort and the "
                f"container ports)")
    if n.is_istio and n.subset:
        return (f"no DestinationRule defines subset {n.subset} for host {n.fqdn} – create one "
                f"(or fix the subset name in {vs}) (IST0101)")
    if n.is_istio:
        return (f"no Service or ServiceEntry gives host {n.fqdn} port {n.port} – check the "
                f"destination host and port in {vs} (IST0101)")
    return f"cluster {cluster} is not defined on this proxy – check the route's destination"


def fix_unhealthy_cluster(c: ClusterTarget) -> str:
    """Why a cluster has no healthy endpoint, in Istio terms."""
    n = ClusterName.parse(c.name)
    host = f"{n.fqdn} port {n.port}" if n.is_istio else c.name
    if c.endpoints:
        states = sorted({"outlier-ejected" if e.outlier_failed else e.health.lower()
                         for e in c.endpoints})
        return (f"all {len(c.endpoints)} endpoints of {host} are unhealthy "
                f"({', '.join(states)}) – check the pods' readiness and outlier detection")
    if n.is_istio and n.subset:
        dr = f"DestinationRule {c.destination_rule}" if c.destination_rule else "the DestinationRule"
        return (f"{dr} subset {n.subset} selects no ready pods of {n.fqdn} – check the subset "
                f"labels against the pods' labels and readiness (IST0173)")
    return (f"no ready endpoints for {host} – check the Service's selector and that its pods "
            f"are ready")


def fix_no_virtual_host(host: str, route_config: str, domains: list[str]) -> str:
    """NR at the virtual-host step: which hosts are served, and the closest to `host`."""
    served = sorted({d for d in domains if d != "*" and not d.endswith(":*")})
    close = difflib.get_close_matches(host, served, n=1, cutoff=0.6)
    text = f"no virtual host of route config {route_config} serves host {host!r}"
    if served:
        shown = ", ".join(served[:8]) + (f" (+{len(served) - 8} more)" if len(served) > 8 else "")
        text += f"; served: {shown}"
    if close:
        text += f"; closest: {close[0]}"
    return text + " – add the host to the Gateway's servers[].hosts and the VirtualService's hosts"


def fix_no_route(request: TraceRequest, vhost: str, routes: list[str], services: list[str]) -> str:
    """NR at the route step: the request matched a virtual host but none of its routes."""
    vs = ", ".join(f"VirtualService {s}" for s in services) or "the VirtualService"
    shown = "; ".join(routes[:6]) + (" ..." if len(routes) > 6 else "")
    return (f"no route of virtual host {vhost} matches {request.method} {request.path}"
            + (f" (routes: {shown})" if shown else " (it has no routes)")
            + f" – add a matching http[].match to {vs}")
