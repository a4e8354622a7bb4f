"""Route actions and their upstream clusters: shares, existence in CDS, endpoint health."""

from __future__ import annotations

from kubectl_mesh.configdump import Cluster, Endpoint, RouteAction
from kubectl_mesh.configdump.common import as_int
from kubectl_mesh.configdump.routes import parse_route_config
from kubectl_mesh.trace.verdict import ClusterTarget, EndpointState

_NOT_FOUND_CODES = {"SERVICE_UNAVAILABLE": 503, "NOT_FOUND": 404, "INTERNAL_SERVER_ERROR": 500}
# eds_health_status values Envoy load-balances to (DEGRADED only when nothing is HEALTHY,
# which still avoids UH).
_USABLE = {"HEALTHY", "UNKNOWN", "DEGRADED"}


def model_action(route: dict) -> RouteAction:
    """The configdump model's RouteAction for one raw route."""
    return parse_route_config({"virtual_hosts": [{"routes": [route]}]}).virtual_hosts[0] \
        .routes[0].action


def not_found_code(action: dict) -> int:
    """The status Envoy answers when the route's cluster is missing (default 503)."""
    return _NOT_FOUND_CODES.get(action.get("cluster_not_found_response_code", ""), 503)


def describe_action(route: dict, vhost: dict) -> str:
    """`cluster X` / `2 weighted clusters` / `direct 503` / `redirect ...`, with the timeout
    and the retry policy (route-level, else the virtual host's)."""
    action = model_action(route)
    if action.kind == "weighted_clusters":
        text = f"{len(action.weighted_clusters)} weighted clusters"
    elif action.kind == "cluster":
        text = "cluster"
    else:
        return action.describe()
    r = route.get("route") or {}
    timeout = r.get("timeout")
    if timeout is not None:
        text += f", timeout {timeout}" + (" (none)" if timeout in ("0s", "0") else "")
    else:
        text += ", timeout 15s (Envoy default)"
    retry = r.get("retry_policy") or vhost.get("retry_policy")
    if retry:
        n = as_int(retry.get("num_retries"))
        text += f", {1 if n is None else n} retries on {retry.get('retry_on', '') or '-'}"
    return text


def cluster_targets(action: dict, clusters: dict[str, Cluster] | None,
                    endpoints: list[Endpoint] | None) -> list[ClusterTarget]:
    """The clusters of a raw RouteAction (`cluster` or `weighted_clusters`) with their share
    of requests; `clusters` None means the input had no CDS, `endpoints` None = unchecked."""
    if action.get("cluster"):
        weighted = [(action["cluster"], 1)]
    else:
        wc = action.get("weighted_clusters") or {}
        weighted = [(c.get("name", ""), as_int(c.get("weight")) or 0)
                    for c in wc.get("clusters") or ()]
    total = sum(w for _, w in weighted)
    by_cluster: dict[str, list[Endpoint]] = {}
    for e in endpoints or ():
        by_cluster.setdefault(e.cluster, []).append(e)
    out = []
    for name, weight in weighted:
        share = 100.0 * weight / total if total else 0.0
        if clusters is None:
            out.append(ClusterTarget(name, share, None))
            continue
        c = clusters.get(name)
        if c is None:
            out.append(ClusterTarget(name, share, False))
            continue
        eps = None
        if endpoints is not None and (c.type == "EDS" or name in by_cluster):
            eps = tuple(endpoint_state(e) for e in by_cluster.get(name, ()))
        out.append(ClusterTarget(name, share, True, c.type, c.state, c.destination_rule, eps,
                                 panic_threshold(c.raw)))
    return out


def panic_threshold(raw: dict) -> float:
    """`common_lb_config.healthy_panic_threshold` in percent; Envoy's default is 50."""
    lb = raw.get("common_lb_config") or {}
    if "healthy_panic_threshold" not in lb:
        return 50.0
    value = (lb.get("healthy_panic_threshold") or {}).get("value", 0)
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 50.0


def endpoint_state(e: Endpoint) -> EndpointState:
    """An Endpoint as the trace reports it, with whether it takes traffic."""
    return EndpointState(e.endpoint, e.health_status, e.failed_outlier_check, is_healthy(e))


def is_healthy(e: Endpoint) -> bool:
    """Whether Envoy would send traffic to this host (outside panic mode)."""
    return e.health_status in _USABLE and not e.failed_outlier_check
