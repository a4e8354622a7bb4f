"""VirtualService analyzers (istio/pkg/config/analysis/analyzers/virtualservice/): destination
hosts and ports, subsets against DestinationRules, gateways, and hosts claimed twice on the
mesh gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.analyzers import hosts
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Resource, Store, as_dict, as_list, strings

MESH_GATEWAY = "mesh"


@dataclass(frozen=True)
class Destination:
    """One route destination and where it sits (`http[0].route[1]`, `http[0].mirror`)."""

    destination: dict
    path: tuple  # the path of its `host` field

    @property
    def host(self) -> str:
        return str(self.destination.get("host") or "")

    @property
    def subset(self) -> str:
        return str(self.destination.get("subset") or "")


def route_destinations(vs: Resource) -> Iterator[Destination]:
    """virtualservice.getRouteDestinations: tcp, tls, then http routes."""
    for rule in ("tcp", "tls", "http"):
        for i, route in enumerate(as_list(vs.spec.get(rule))):
            for j, weighted in enumerate(as_list(as_dict(route).get("route"))):
                destination = as_dict(as_dict(weighted).get("destination"))
                yield Destination(destination, ("spec", rule, i, "route", j, "destination", "host"))


def mirror_destinations(vs: Resource) -> Iterator[Destination]:
    """virtualservice.getHTTPMirrorDestinations: `mirror` and `mirrors[]` of http routes."""
    for i, route in enumerate(as_list(vs.spec.get("http"))):
        route = as_dict(route)
        if isinstance(route.get("mirror"), dict):
            yield Destination(route["mirror"], ("spec", "http", i, "mirror", "host"))
        for j, mirror in enumerate(as_list(route.get("mirrors"))):
            yield Destination(as_dict(as_dict(mirror).get("destination")),
                              ("spec", "http", i, "mirrors", j, "host"))


def destination_subsets(store: Store) -> Iterator[Message]:
    """virtualservice.DestinationRuleAnalyzer: a subset no DestinationRule for that host defines."""
    defined: set[tuple[str, str, str]] = set()
    for dr in store.of("DestinationRule"):
        ns, name = hosts.resource_name(dr.namespace, str(dr.spec.get("host") or ""))
        for subset in as_list(dr.spec.get("subsets")):
            defined.add((ns, name, str(as_dict(subset).get("name") or "")))
    for vs in store.of("VirtualService"):
        for what, found in (("host+subset in destinationrule", route_destinations(vs)),
                            ("mirror+subset in destinationrule", mirror_destinations(vs))):
            for d in found:
                if not d.subset:
                    continue
                ns, name = hosts.resource_name(vs.namespace, d.host)
                if (ns, name, d.subset) not in defined:
                    yield Message(msg.REFERENCED_RESOURCE_NOT_FOUND,
                                  (what, f"{d.host}+{d.subset}"), vs, vs.line_of(*d.path))


def destination_hosts(store: Store) -> Iterator[Message]:
    """virtualservice.DestinationHostAnalyzer: a destination host no Service or ServiceEntry
    defines (short names resolve in the VirtualService's namespace), and ports."""
    services = hosts.ServiceHosts(store.of("ServiceEntry"), store.of("Service"))
    for vs in store.of("VirtualService"):
        export = strings(vs.spec.get("exportTo"))
        for what, found in (("host", route_destinations(vs)), ("mirror host", mirror_destinations(vs))):
            for d in found:
                service = services.find(vs.namespace, export, d.host)
                if service is None:
                    yield Message(msg.REFERENCED_RESOURCE_NOT_FOUND, (what, d.host), vs,
                                  vs.line_of(*d.path))
                    continue
                yield from _ports(vs, d, service)


def _ports(vs: Resource, d: Destination, service: dict) -> Iterator[Message]:
    """virtualservice.checkServiceEntryPorts. (Line numbers are looked up only for a message:
    that reads the object's YAML again.)"""
    numbers = [p.get("number") for p in service["ports"]]
    port = as_dict(d.destination.get("port")).get("number")
    if port is None:
        if len(numbers) > 1:
            yield Message(msg.VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
                          (d.host, numbers), vs, vs.line_of(*d.path))
        return
    if port not in numbers:
        yield Message(msg.REFERENCED_RESOURCE_NOT_FOUND, ("host:port", f"{d.host}:{port}"), vs,
                      vs.line_of(*d.path))


def gateways(store: Store) -> Iterator[Message]:
    """virtualservice.GatewayAnalyzer: a gateway that does not exist, and VirtualService hosts
    none of the gateway's servers accepts."""
    for vs in store.of("VirtualService"):
        vs_hosts = strings(vs.spec.get("hosts"))
        for i, name in enumerate(strings(vs.spec.get("gateways"))):
            if name == MESH_GATEWAY:
                continue
            ns, _, short = name.rpartition("/")
            ns = ns or vs.namespace
            gateway = store.get("Gateway", ns, short)
            if gateway is None:
                yield Message(msg.REFERENCED_RESOURCE_NOT_FOUND, ("gateway", name), vs,
                              vs.line_of("spec", "gateways", i))
            if not _host_in_gateway(gateway, vs_hosts, vs.namespace):
                yield Message(msg.VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
                              (vs_hosts, vs.full_name, f"{ns}/{short}"), vs,
                              vs.line_of("spec", "gateways", i))


def _host_in_gateway(gateway: Resource | None, vs_hosts: list[str], vs_namespace: str) -> bool:
    """virtualservice.vsHostInGateway, with the servers' `ns/host` forms as Istio reads them."""
    if gateway is None:
        return False
    names = []
    for server in as_list(gateway.spec.get("servers")):
        for host in strings(as_dict(server).get("hosts")):
            scope, slash, bare = host.partition("/")
            if slash:
                if scope == ".":
                    scope = gateway.namespace
                if scope not in (vs_namespace, "*"):
                    continue
                host = bare
            names.append(host)
    return any(hosts.matches(g, v) for g in names for v in vs_hosts)


def conflicting_mesh_hosts(store: Store) -> Iterator[Message]:
    """virtualservice.ConflictingMeshGatewayHostsAnalyzer: two VirtualServices bound to the
    mesh gateway (no `gateways`, or `mesh` among them) that define the same host."""
    by_host: dict[str, list[Resource]] = {}
    for vs in store.of("VirtualService"):
        gws = strings(vs.spec.get("gateways"))
        if gws and MESH_GATEWAY not in gws:
            continue
        export = strings(vs.spec.get("exportTo"))
        scopes = {"*"} if not export or "*" in export else {
            vs.namespace if e == "." else e for e in export}
        for scope in sorted(scopes):
            for host in strings(vs.spec.get("hosts")):
                by_host.setdefault(f"{scope}/{hosts.to_fqdn(vs.namespace, host)}", []).append(vs)
    exported = {key[2:]: found for key, found in by_host.items() if key.startswith("*/")}
    reported: set[tuple[str, str]] = set()
    for scoped, found in by_host.items():
        scope, _, fqdn = scoped.partition("/")
        if scope != "*":
            found = found + [vs for host, vss in exported.items()
                             if hosts.matches(fqdn, host) for vs in vss] \
                if any(h.startswith("*") for h in exported) or fqdn.startswith("*") \
                else found + exported.get(fqdn, [])
        if len(found) < 2:
            continue
        names = ",".join(sorted(vs.full_name for vs in found))
        for vs in found:
            key = (vs.namespace, vs.name)
            if key in reported:
                continue
            reported.add(key)
            yield Message(msg.CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS, (names, scoped), vs,
                          vs.name_line())


JWT_CLAIM_HEADER = "@request.auth.claims"  # istio/pkg/jwt/routing.go HeaderJWTClaim


def _routing_claim(header: str) -> bool:
    """jwt.ToRoutingClaim(header).Match: `@request.auth.claims.a.b` or `...claims[a][b]`."""
    if not header.lower().startswith(JWT_CLAIM_HEADER):
        return False
    name = header[len(JWT_CLAIM_HEADER):]
    return (name.startswith(".") and len(name) > 1) or (
        name.startswith("[") and name.endswith("]") and len(name) > 2)


def _jwt_claim_key(vs: Resource) -> str:
    """routeBasedOnJWTClaimKey: the first header (or withoutHeaders) key of an http match
    that routes on a JWT claim (YAML order where Go's map order is random), else ""."""
    for route in as_list(vs.spec.get("http")):
        for match in as_list(as_dict(route).get("match")):
            match = as_dict(match)
            for field in ("headers", "withoutHeaders"):
                for key in as_dict(match.get(field)):
                    if isinstance(key, str) and _routing_claim(key):
                        return key
    return ""


def jwt_claim_routes(store: Store) -> Iterator[Message]:
    """virtualservice.JWTClaimRouteAnalyzer (jwtclaimroute.go): a VirtualService that routes on
    a JWT claim through a Gateway whose pods no RequestAuthentication (of istio-system or the
    pod's namespace) selects: the claims are never validated nor made available (IST0149)."""
    by_namespace: dict[str, list[dict]] = {}
    for ra in store.of("RequestAuthentication"):
        labels = as_dict(as_dict(ra.spec.get("selector")).get("matchLabels"))
        by_namespace.setdefault(ra.namespace, []).append(
            {str(k): str(v) for k, v in labels.items()})
    for vs in store.of("VirtualService"):
        key = _jwt_claim_key(vs)
        if not key:
            continue
        for name in strings(vs.spec.get("gateways")):
            if name == MESH_GATEWAY:
                continue
            ns, _, short = name.rpartition("/")
            gateway = store.get("Gateway", ns or vs.namespace, short)
            if gateway is None:
                continue
            selector = {str(k): str(v) for k, v in as_dict(gateway.spec.get("selector")).items()}
            for pod in store.of("Pod"):
                if not all(pod.labels.get(k) == v for k, v in selector.items()):
                    continue
                selectors = by_namespace.get("istio-system", []) + by_namespace.get(
                    pod.namespace, [])
                if not any(all(pod.labels.get(k) == v for k, v in s.items())
                           for s in selectors):
                    yield Message(msg.JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN,
                                  (key, f"{ns or vs.namespace}/{short}", pod.name), vs)
