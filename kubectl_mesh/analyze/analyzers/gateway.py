"""Gateway analyzers (istio/pkg/config/analysis/analyzers/gateway/): a selector that matches
no pod, server ports the gateway's Service does not expose, missing credentialName secrets."""

from __future__ import annotations

from typing import Iterator, Optional

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import (Resource, Store, as_dict, as_list, scalar,
                                             selector_matches)


def selector_string(selector: dict) -> str:
    """labels.SelectorFromSet(...).String(): `k=v` pairs sorted by key, comma-separated."""
    return ",".join(f"{k}={selector[k]}" for k in sorted(selector))


def _selector(gateway: Resource) -> dict:
    return {str(k): str(v) for k, v in as_dict(gateway.spec.get("selector")).items()}


def _selector_line(gateway: Resource, selector: dict) -> int:
    first = sorted(selector)[0] if selector else None
    return gateway.line_of("spec", "selector", first) if first else 0


def _selected_pods(store: Store, selector: dict) -> list[Resource]:
    return [pod for pod in store.of("Pod") if selector_matches(selector, pod.labels)]


def selector_and_ports(store: Store) -> Iterator[Message]:
    """gateway.IngressGatewayPortAnalyzer."""
    services_by_ns: dict[str, list[Resource]] = {}
    for svc in store.of("Service"):
        services_by_ns.setdefault(svc.namespace, []).append(svc)
    for gw, selector, key, pods in _gateways_and_pods(store):
        if not pods:
            yield Message(msg.REFERENCED_RESOURCE_NOT_FOUND, ("selector", key), gw,
                          _selector_line(gw, selector))
            continue
        target_ports: set = set()
        port_map: dict = {}
        for pod in pods:
            for svc in services_by_ns.get(pod.namespace, []):
                svc_selector = as_dict(svc.spec.get("selector"))
                if not selector_matches(svc_selector, pod.labels):
                    continue
                for port in as_list(svc.spec.get("ports")):
                    port = as_dict(port)
                    if (port.get("protocol") or "TCP") != "TCP":
                        continue
                    target = port.get("targetPort")
                    if isinstance(target, int) and target:
                        target_ports.add(target)
                        port_map.setdefault(scalar(port.get("port")), target)
                    else:
                        target_ports.add(scalar(port.get("port")))
        for server in as_list(gw.spec.get("servers")):
            number = scalar(as_dict(as_dict(server).get("port")).get("number"))
            if number is not None and number not in target_ports and number not in port_map:
                yield Message(msg.GATEWAY_PORT_NOT_DEFINED_ON_SERVICE, (number, key), gw,
                              _selector_line(gw, selector))


def credential_secrets(store: Store) -> Iterator[Message]:
    """gateway.SecretAnalyzer: a TLS server's credentialName names no Secret in the namespace
    of the gateway's pods (where Istio reads it)."""
    for gw, selector, key, pods in _gateways_and_pods(store):
        if not pods:
            yield Message(msg.REFERENCED_RESOURCE_NOT_FOUND, ("selector", key), gw,
                          _selector_line(gw, selector))
            continue
        namespace = pods[0].namespace
        for i, server in enumerate(as_list(gw.spec.get("servers"))):
            name = _credential_name(as_dict(server))
            if not name:
                continue
            ns, _, short = name.rpartition("/")
            if store.get("Secret", ns or namespace, short) is None:
                yield Message(msg.REFERENCED_RESOURCE_NOT_FOUND, ("credentialName", name), gw,
                              gw.line_of("spec", "servers", i, "tls", "credentialName"))


def _gateways_and_pods(store: Store) -> Iterator[tuple[Resource, dict, str, list[Resource]]]:
    """Each Gateway with its selector, the selector as text and the pods it selects (looked
    up once per distinct selector)."""
    pods_by_selector: dict[str, list[Resource]] = {}
    for gw in store.of("Gateway"):
        selector = _selector(gw)
        key = selector_string(selector)
        if key not in pods_by_selector:
            pods_by_selector[key] = _selected_pods(store, selector)
        yield gw, selector, key, pods_by_selector[key]


def _credential_name(server: dict) -> Optional[str]:
    name = as_dict(server.get("tls")).get("credentialName")
    return str(name) if name else None


def conflicting_gateways(store: Store) -> Iterator[Message]:
    """gateway.ConflictingGatewayAnalyzer (gateway/conflictinggateway.go): two Gateways whose
    selectors pick the same pods, with a server on the same port claiming the same host (with
    the same bind) – IST0145 on each; a selector that matches no other gateway's and no pod is
    IST0101, as in the real analyzer.

    Gateways are grouped by (selector, port) once; selectors are compared per distinct
    selector, not per gateway pair."""
    groups: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    for gw in store.of("Gateway"):
        key = selector_string(_selector(gw))
        for server in as_list(gw.spec.get("servers")):
            server = as_dict(server)
            port = str(scalar(as_dict(server.get("port")).get("number")) or 0)
            bind = str(server.get("bind") or "")
            groups.setdefault((key, port), {})[gw.full_name] = {
                h: bind for h in _hosts(server)}
    selectors = {key for key, _ in groups}
    same_pods: dict[tuple[str, str], bool] = {}

    def overlap(a: str, b: str) -> bool:
        """Whether selectors `a` and `b` (one containing the other as text) select a pod."""
        if (a, b) not in same_pods:
            sa, sb = _parse_selector(a), _parse_selector(b)
            same_pods[(a, b)] = any(selector_matches(sa, p.labels) and
                                    selector_matches(sb, p.labels) for p in store.of("Pod"))
        return same_pods[(a, b)]

    for gw in store.of("Gateway"):
        selector = _selector(gw)
        key = selector_string(selector)
        hit = {x for x in selectors if x == key or ((x in key or key in x) and overlap(key, x))}
        if key and not hit:
            yield Message(msg.REFERENCED_RESOURCE_NOT_FOUND, ("selector", key), gw,
                          _selector_line(gw, selector))
            continue
        for server in as_list(gw.spec.get("servers")):
            server = as_dict(server)
            port = str(scalar(as_dict(server.get("port")).get("number")) or 0)
            bind = str(server.get("bind") or "")
            names = _hosts(server)
            conflicting = []
            for x in sorted(hit):
                for other, known in groups.get((x, port), {}).items():
                    if other != gw.full_name and _duplicates(names, bind, known):
                        conflicting.append(other)
            if conflicting:
                yield Message(msg.CONFLICTING_GATEWAYS,
                              (",".join(sorted(conflicting)), key, port, ",".join(names)), gw)


def _hosts(server: dict) -> list[str]:
    return [h for h in as_list(server.get("hosts")) if isinstance(h, str)]


def _duplicates(names: list[str], bind: str, known: dict[str, str]) -> bool:
    """model.CheckDuplicates (pilot/pkg/model/gateway.go): hosts already known with the same
    bind; when there are none, the hosts become known (the real analyzer keeps that)."""
    found = [h for h in names if h in known and known[h] == bind]
    if not found:
        known.update({h: bind for h in names})
    return bool(found)


def _parse_selector(text: str) -> dict:
    """conflictinggateway.go parseSelectorFromString: `k=v,k2=v2` back into a map."""
    pairs = (part.split("=") for part in text.split(","))
    return {kv[0]: kv[1] for kv in pairs if len(kv) == 2}
