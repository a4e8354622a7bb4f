"""RDS: Istio-shaped RouteConfigurations (`http.<port>` for gateways, `<port>` for sidecars).

Deliberate NACK trigger: two VirtualServices binding the same host to the same gateway port
each get their own virtual host here (real Istio merges them), so `http.<port>` carries
duplicate domains and Envoy rejects it with "Only unique values for domains are permitted".
"""

from __future__ import annotations

import re

from sandbox.istiod.clusters import cluster_name, config_path
from sandbox.istiod.mesh import (Mesh, Service, host_matches, name_of, namespace_of,
                                 resolve_host, target_port)
from sandbox.istiod.outbound import route_names
from sandbox.istiod.protocol import http_or_sniffed
from sandbox.istiod.proxy import Proxy

ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
def _previous_hosts() -> dict:
    """A fresh dict per route: protobuf's ParseDict pops "@type" from Any fields while it
    parses, so a shared constant raced between concurrent pushes (NACKs without a type URL)."""
    return {"name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host."
                                      "previous_hosts.v3.PreviousHostsPredicate"}}

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns)$")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def duration(value: str | None, default: str = "0s") -> str:
    """Istio (Go) duration `0.5s`/`100ms`/`1m` → proto-JSON duration `0.5s`."""
    if not value:
        return default
    match = _DURATION.match(str(value).strip())
    if not match:
        raise ValueError(f"invalid duration {value!r}")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def retry_policy(retries: dict | None) -> dict | None:
    """Istio's retry policy: 2 attempts on connect errors by default; `attempts: 0` disables."""
    retries = retries if retries is not None else {"attempts": 2}
    attempts = int(retries.get("attempts", 2))
    if attempts <= 0:
        return None
    conditions = [c.strip() for c in (retries.get("retryOn") or DEFAULT_RETRY_ON).split(",") if c.strip()]
    codes = [int(c) for c in conditions if c.isdigit()]
    conditions = [c for c in conditions if not c.isdigit()]
    if codes and "retriable-status-codes" not in conditions:
        conditions.append("retriable-status-codes")
    policy = {
        "retry_on": ",".join(conditions),
        "num_retries": attempts,
        "retry_host_predicate": [_previous_hosts()],
        "host_selection_retry_max_attempts": "5",
    }
    if "retriable-status-codes" in conditions:
        policy["retriable_status_codes"] = codes or [503]
    if retries.get("perTryTimeout"):
        policy["per_try_timeout"] = duration(retries["perTryTimeout"])
    return policy


def _string_match(spec: dict) -> dict:
    if "exact" in spec:
        return {"exact": spec["exact"]}
    if "prefix" in spec:
        return {"prefix": spec["prefix"]}
    if "regex" in spec:
        return {"safe_regex": {"regex": spec["regex"]}}
    return {"safe_regex": {"regex": ".*"}}


def route_match(match: dict | None) -> dict:
    match = match or {}
    uri = match.get("uri") or {}
    result: dict = {}
    if "exact" in uri:
        result["path"] = uri["exact"]
    elif "regex" in uri:
        result["safe_regex"] = {"regex": uri["regex"]}
    else:
        result["prefix"] = uri.get("prefix", "/")
    result["case_sensitive"] = not match.get("ignoreUriCase", False)
    headers = [{"name": name, "string_match": _string_match(spec or {})}
               for name, spec in (match.get("headers") or {}).items()]
    if headers:
        result["headers"] = headers
    return result


def destination_cluster(mesh: Mesh, destination: dict, namespace: str,
                        listener_port: int | None = None) -> tuple[str, str]:
    """(cluster name, `fqdn:port`) for a VS destination; subsets need no DestinationRule here:
    that is exactly the misconfiguration users troubleshoot (503 NC). In a sidecar's route
    config `<listener_port>` a destination without a port takes the listener's port: real
    istiod looks the host up among the Services on that port only, which have just that port
    (route/route.go `GetDestinationCluster`, httproute.go `BuildSidecarOutboundVirtualHosts`)."""
    fqdn = resolve_host(destination.get("host", ""), namespace)
    number = (destination.get("port") or {}).get("number")
    service = mesh.service_by_host(fqdn)
    if number is None and listener_port is not None:
        number = listener_port
    if number is None:
        port = service.port(None) if service else None
        number = port["port"] if port else 80
    return cluster_name("outbound", int(number), destination.get("subset", ""), fqdn), f"{fqdn}:{number}"


def http_routes(mesh: Mesh, vs: dict, port: int | None = None) -> list[dict]:
    """Envoy routes for the `http` section of a VirtualService (sidecars filter by `port`)."""
    namespace = namespace_of(vs)
    routes = []
    for http in (vs.get("spec") or {}).get("http") or []:
        matches = http.get("match") or [{}]
        action: dict = {}
        operation = ""
        if http.get("directResponse"):
            direct = http["directResponse"]
            action = {"direct_response": {"status": int(direct.get("status", 200))}}
            body = (direct.get("body") or {}).get("string")
            if body is not None:
                action["direct_response"]["body"] = {"inline_string": body}
        else:
            destinations = http.get("route") or []
            if not destinations:
                continue
            names = [destination_cluster(mesh, d.get("destination") or {}, namespace, port)
                     for d in destinations]
            operation = names[0][1] + "/*"
            route: dict = {}
            if len(destinations) == 1:
                route["cluster"] = names[0][0]
            else:
                route["weighted_clusters"] = {"clusters": [
                    {"name": name, "weight": int(d.get("weight", 0))}
                    for (name, _), d in zip(names, destinations)]}
            route["timeout"] = duration(http.get("timeout"))
            policy = retry_policy(http.get("retries"))
            if policy:
                route["retry_policy"] = policy
            if (http.get("rewrite") or {}).get("uri"):
                route["prefix_rewrite"] = http["rewrite"]["uri"]
            action = {"route": route}
        for match in matches:
            if port is not None and match.get("port") not in (None, port):
                continue
            entry: dict = {}
            name = ".".join(n for n in (http.get("name"), match.get("name")) if n)
            if name:
                entry["name"] = name
            entry["match"] = route_match(match)
            entry.update(action)
            entry["metadata"] = {"filter_metadata": {"istio": {
                "config": config_path("virtual-service", vs)}}}
            if operation:
                entry["decorator"] = {"operation": operation}
            routes.append(entry)
    return routes


def _strip_namespace(host: str) -> str:
    return host.split("/", 1)[1] if "/" in host else host


def gateway_ports(mesh: Mesh, proxy: Proxy) -> list[tuple[dict, dict, int, int]]:
    """(gateway, server, service port, target port) for the Gateways selecting this proxy."""
    pod = mesh.pod(proxy.name, proxy.namespace)
    services = mesh.services_selecting(proxy.labels, proxy.namespace)
    result = []
    for gateway in mesh.gateways:
        selector = (gateway.get("spec") or {}).get("selector") or {}
        if not selector or not all(proxy.labels.get(k) == v for k, v in selector.items()):
            continue
        for server in (gateway.get("spec") or {}).get("servers") or []:
            if str((server.get("port") or {}).get("protocol", "HTTP")).upper() not in ("HTTP", "HTTP2"):
                continue
            number = int(server["port"]["number"])
            target = number
            for service in services:
                port = service.port(number)
                if port is not None:
                    target = target_port(port, pod) or number
                    break
            result.append((gateway, server, number, target))
    return result


def _bound(mesh: Mesh, vs: dict, gateway: dict) -> bool:
    for ref in (vs.get("spec") or {}).get("gateways") or []:
        found = mesh.gateway_named(ref, namespace_of(vs))
        if found is not None and (name_of(found), namespace_of(found)) == (
                name_of(gateway), namespace_of(gateway)):
            return True
    return False


def _bound_host_index(mesh: Mesh, gateway: dict):
    """The (order, VirtualService, host) entries bound to `gateway`: exact hosts by name and
    wildcard hosts in a list, so matching a Gateway host does not scan every VirtualService
    (5000 hosts × 5000 VirtualServices took minutes)."""
    exact: dict[str, list] = {}
    wild: list = []
    for i, vs in enumerate(mesh.virtual_services):
        if not _bound(mesh, vs, gateway):
            continue
        for j, vs_host in enumerate((vs.get("spec") or {}).get("hosts") or []):
            entry = ((i, j), vs, vs_host)
            (wild if "*" in vs_host else exact.setdefault(vs_host, [])).append(entry)
    return exact, wild


def _candidates(index, server_host: str) -> list:
    """Bound (order, vs, vs_host) entries that may match `server_host`, in document order."""
    exact, wild = index
    if "*" in server_host:
        found = [e for entries in exact.values() for e in entries] + wild
    else:
        found = exact.get(server_host, []) + wild
    return sorted(found, key=lambda e: e[0])


def gateway_route_configs(mesh: Mesh, proxy: Proxy) -> list[dict]:
    by_target: dict[int, list[dict]] = {}
    names: dict[int, set[str]] = {}
    seen: set[tuple[int, str, str]] = set()
    indexes: dict[tuple[str, str], tuple] = {}
    for gateway, server, number, target in gateway_ports(mesh, proxy):
        vhosts = by_target.setdefault(target, [])
        taken_names = names.setdefault(target, set())
        gw_key = (namespace_of(gateway), name_of(gateway))
        if gw_key not in indexes:
            indexes[gw_key] = _bound_host_index(mesh, gateway)
        for server_host in map(_strip_namespace, server.get("hosts") or []):
            for _, vs, vs_host in _candidates(indexes[gw_key], server_host):
                if host_matches(server_host, vs_host):
                    host = vs_host
                elif host_matches(vs_host, server_host):
                    host = server_host
                else:
                    continue
                key = (target, host, f"{namespace_of(vs)}/{name_of(vs)}")
                if key in seen:
                    continue
                seen.add(key)
                first = f"{host}:{number}"
                name = first + (f"/{key[2]}" if first in taken_names else "")
                taken_names.add(first)
                vhosts.append({
                    "name": name,
                    "domains": ["*"] if host == "*" else [host, f"{host}:*"],
                    "routes": http_routes(mesh, vs),
                    "include_request_attempt_count": True,
                })
    configs = []
    for target, vhosts in sorted(by_target.items()):
        if not vhosts:
            vhosts = [{"name": "blackhole:%d" % target, "domains": ["*"], "routes": [
                {"name": "block_all", "match": {"prefix": "/"}, "direct_response": {"status": 404}}]}]
        configs.append({"name": f"http.{target}", "virtual_hosts": vhosts,
                        "validate_clusters": False, "ignore_port_in_host_matching": True})
    return configs


def service_domains(service: Service, proxy_namespace: str) -> list[str]:
    """A sidecar virtual host's domains as httproute.go `generateVirtualHostDomains` gives
    them to an Envoy sidecar (`SidecarIgnorePort`: no `:port` forms): the FQDN, its absolute
    form with a trailing dot (`GenerateAltVirtualHosts`, PILOT_ENABLE_ABSOLUTE_FQDN_VHOST_DOMAIN
    on by default), the short names `generateAltVirtualHostsForKubernetesService` gives for
    the proxy's namespace, then the ClusterIP."""
    name, namespace = service.name, service.namespace
    domains = [service.fqdn, service.fqdn + "."]
    if namespace == proxy_namespace:
        domains += [name, f"{name}.{namespace}.svc", f"{name}.{namespace}"]
    else:
        domains += [f"{name}.{namespace}", f"{name}.{namespace}.svc"]
    if service.cluster_ip:
        domains.append(service.cluster_ip)
    return domains


def _mesh_virtual_services(mesh: Mesh) -> list[dict]:
    return [vs for vs in mesh.virtual_services
            if "mesh" in ((vs.get("spec") or {}).get("gateways") or ["mesh"])]


def _vs_hosts(vs: dict) -> list[str]:
    return [resolve_host(h, namespace_of(vs)).lower()
            for h in (vs.get("spec") or {}).get("hosts") or []]


def default_route(service: Service, port: int) -> dict:
    return {
        "name": "default",
        "match": {"prefix": "/"},
        "route": {"cluster": cluster_name("outbound", port, "", service.fqdn), "timeout": "0s",
                  "retry_policy": retry_policy(None)},
        "decorator": {"operation": f"{service.fqdn}:{port}/*"},
    }


def _port_virtual_hosts(mesh: Mesh, proxy: Proxy, port: int) -> list[dict]:
    """The virtual hosts of a sidecar's outbound port, in the order real istiod builds them
    (httproute.go `BuildSidecarOutboundVirtualHosts`, route/route.go
    `BuildSidecarVirtualHostWrapper`): per VirtualService bound to `mesh` with routes on this
    port, a virtual host per host that is no Service on the port (port 80 only: every
    VirtualService is taken on 80, `selectVirtualServices` runs "if listenerPort != 80") and
    per Service it names whose port is HTTP or sniffed; then a `default` route per remaining
    HTTP or sniffed Service. Names repeat → the later is dropped; a domain already taken is
    dropped (`dedupeDomains`); a virtual host left without domains is dropped."""
    on_port = {s.fqdn: s for s in mesh.services if s.port(port) is not None}
    wrappers: list[tuple[list[str], list[Service], list[dict]]] = []
    claimed: set[str] = set()
    for vs in _mesh_virtual_services(mesh):
        hosts = _vs_hosts(vs)
        if port != 80 and not any(any(host_matches(h, fqdn) for fqdn in on_port) for h in hosts):
            continue
        routes = http_routes(mesh, vs, port)
        if not routes:
            continue
        others: list[str] = []
        services: list[Service] = []
        for host in hosts:
            matched = [s for fqdn, s in on_port.items() if host_matches(host, fqdn)]
            if not matched and host not in on_port:
                others.append(host)
            services += [s for s in matched if s not in services]
        services = [s for s in services if http_or_sniffed(s.port(port))]
        if not services and port != 80:
            continue
        wrappers.append((others, services, routes))
        claimed.update(s.fqdn for s in services)
    for service in on_port.values():
        if service.fqdn not in claimed and http_or_sniffed(service.port(port)):
            wrappers.append(([], [service], [default_route(service, port)]))
    vhosts: list[dict] = []
    names: set[str] = set()
    taken: set[str] = set()

    def add(name: str, domains: list[str], routes: list[dict]) -> None:
        if name in names:
            return
        names.add(name)
        kept = [d for d in domains if d.lower() not in taken]
        taken.update(d.lower() for d in kept)
        if kept:
            vhosts.append({"name": name, "domains": kept, "routes": routes,
                           "include_request_attempt_count": True})

    for others, services, routes in wrappers:
        for host in others:
            add(f"{host}:{port}", [host], routes)
        for service in services:
            add(f"{service.fqdn}:{port}", service_domains(service, proxy.namespace), routes)
    return vhosts


def sidecar_route_config(mesh: Mesh, proxy: Proxy, name: str) -> dict:
    """Route config `<port>` (an HTTP port's, shared: its virtual hosts sorted by name, then
    `allow_any` to PassthroughCluster) or `<host>:<port>` (a sniffed port's: only the host's
    virtual host, domains `*`, no catch-all): httproute.go `buildSidecarOutboundHTTPRouteConfig`,
    `getVirtualHostsForSniffedServicePort`, `buildCatchAllVirtualHost`."""
    host, _, number = name.rpartition(":")
    vhosts = _port_virtual_hosts(mesh, proxy, int(number))
    if host:
        vhosts = [vh for vh in vhosts if name in vh["domains"] or host in vh["domains"]]
        if len(vhosts) == 1:
            vhosts[0]["domains"] = ["*"]
    else:
        vhosts.sort(key=lambda vh: vh["name"])
        vhosts.append({"name": "allow_any", "domains": ["*"], "routes": [{
            "name": "allow_any", "match": {"prefix": "/"},
            "route": {"cluster": "PassthroughCluster", "timeout": "0s"}}],
            "include_request_attempt_count": True})
    return {"name": name, "virtual_hosts": vhosts, "validate_clusters": False,
            "ignore_port_in_host_matching": True}


def sidecar_route_configs(mesh: Mesh, proxy: Proxy) -> list[dict]:
    """One route config per RDS name the sidecar's outbound listeners ask for: none for TCP
    ports (sandbox/istiod/outbound.py)."""
    return [sidecar_route_config(mesh, proxy, name) for name in route_names(mesh)]


def route_configs_for(mesh: Mesh, proxy: Proxy) -> list[dict]:
    if proxy.type == "router":
        return gateway_route_configs(mesh, proxy)
    return sidecar_route_configs(mesh, proxy)
