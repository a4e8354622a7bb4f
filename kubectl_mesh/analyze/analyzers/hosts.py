"""Host names as the analyzers compare them (istio/pkg/config/analysis/analyzers/util/hosts.go,
istio/pkg/config/host/name.go)."""

from __future__ import annotations

import re
from typing import Iterable, Optional

from kubectl_mesh.analyze.resources import Resource, as_list, strings

CLUSTER_DOMAIN = "svc.cluster.local"
EXPORT_ALL = "*"
EXPORT_LOCAL = "."
_FQDN = re.compile(r"^(.+)\.(.+)\.svc\.cluster\.local$")


def to_fqdn(namespace: str, host: str) -> str:
    """util.ConvertHostToFQDN: a short name (no dot, no wildcard) becomes name.ns.svc.cluster.local."""
    if host.startswith("*") or "." in host:
        return host
    return f"{host}.{namespace}.{CLUSTER_DOMAIN}"


def resource_name(namespace: str, host: str) -> tuple[str, str]:
    """util.GetResourceNameFromHost: (namespace, name) of a Service host, FQDN or short."""
    match = _FQDN.match(host)
    if match:
        return match.group(2), match.group(1)
    return namespace, host


def matches(a: str, b: str) -> bool:
    """host.Name.Matches: whether two host names (either may be a `*.` wildcard) overlap."""
    if a.startswith("*"):
        if b.startswith("*"):
            return a[1:].endswith(b[1:]) or b[1:].endswith(a[1:])
        return b.endswith(a[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return a == b


class ServiceHosts:
    """util.InitServiceEntryHostMap: every host a ServiceEntry or a Kubernetes Service defines,
    by (visibility scope, FQDN); wildcard hosts kept apart so exact look-ups are one dict get."""

    def __init__(self, service_entries: Iterable[Resource], services: Iterable[Resource]):
        self.exact: dict[tuple[str, str], dict] = {}
        self.wildcards: list[tuple[str, str, dict]] = []
        for se in service_entries:
            export = strings(se.spec.get("exportTo"))
            ports = [p for p in as_list(se.spec.get("ports")) if isinstance(p, dict)]
            entry = {"ports": ports, "selector": (se.spec.get("workloadSelector") or {}).get(
                "labels") or {}}
            for host in strings(se.spec.get("hosts")):
                scopes = [EXPORT_ALL] if not export or EXPORT_ALL in export else [
                    se.namespace if e == EXPORT_LOCAL else e for e in export]
                for scope in scopes:
                    self._add(scope, to_fqdn(se.namespace, host), entry)
        for svc in services:
            ports = [{"number": p.get("port"), "name": p.get("name"), "protocol": p.get("protocol")}
                     for p in as_list(svc.spec.get("ports")) if isinstance(p, dict)]
            entry = {"ports": ports, "selector": {}}
            anno = svc.annotations.get("networking.istio.io/exportTo", "")
            scopes = [EXPORT_ALL] if not anno else [
                svc.namespace if s.strip() == EXPORT_LOCAL else s.strip() for s in anno.split(",")]
            for scope in scopes:
                self._add(scope, to_fqdn(svc.namespace, svc.name), entry)

    def _add(self, scope: str, fqdn: str, entry: dict) -> None:
        self.exact[(scope, fqdn)] = entry
        if fqdn.startswith("*"):
            self.wildcards.append((scope, fqdn, entry))

    def find(self, source_namespace: str, export_to: list, host: str) -> Optional[dict]:
        """util.GetDestinationHost: the service `host` means, seen from `source_namespace`."""
        fqdn = to_fqdn(source_namespace, host)
        entry = self.exact.get((EXPORT_ALL, fqdn))
        if entry is not None:
            return entry
        scopes = [source_namespace] if not export_to else [
            source_namespace if e == EXPORT_LOCAL else e for e in export_to]
        for scope in scopes:
            entry = self.exact.get((scope, fqdn))
            if entry is not None:
                return entry
        bare = host[1:] if host.startswith("*") else host
        for scope, se_host, entry in self.wildcards:
            if scope not in (EXPORT_ALL, source_namespace):
                continue
            if bare.endswith(se_host[1:]):
                return entry
        return None
