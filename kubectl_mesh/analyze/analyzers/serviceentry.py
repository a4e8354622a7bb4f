"""ServiceEntry analyzers (istio/pkg/config/analysis/analyzers/serviceentry/)."""

from __future__ import annotations

from typing import Iterator

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Resource, Store, as_dict, as_list, strings

# proxyMetadata that lets proxies allocate addresses themselves (protocoladdresses.go)
DNS_CAPTURE = "ISTIO_META_DNS_CAPTURE"
AUTO_ALLOCATE = ("ISTIO_META_DNS_AUTO_ALLOCATE", "PILOT_ENABLE_IP_AUTOALLOCATE")


def protocol_addresses(store: Store) -> Iterator[Message]:
    """serviceentry.Analyzer (protocoladdresses.go): a ServiceEntry without addresses (none in
    its spec nor allocated in its status) has each TCP or protocol-less port reported
    (IST0134), unless the mesh config's proxyMetadata turns on DNS capture with address
    auto-allocation."""
    metadata = store.mesh.proxy_metadata
    if metadata.get(DNS_CAPTURE) == "true" and any(metadata.get(k) == "true"
                                                  for k in AUTO_ALLOCATE):
        return
    for se in store.of("ServiceEntry"):
        if se.spec.get("addresses") is not None \
                or as_list(as_dict(se.obj.get("status")).get("addresses")):
            continue
        for i, port in enumerate(as_list(se.spec.get("ports"))):
            protocol = str(as_dict(port).get("protocol") or "")
            if protocol == "" or protocol.upper() == "TCP":
                yield Message(msg.SERVICE_ENTRY_ADDRESSES_REQUIRED, (), se,
                              se.line_of("spec", "ports", i, "name"))


def conflicting_protocols(store: Store) -> Iterator[Message]:
    """serviceentry.ConflictingServiceEntryProtocolAnalyzer (conflictingserviceentries.go):
    ServiceEntries visible in one scope that give one host and port different protocols
    (IST0177, once per ServiceEntry)."""
    index: dict[tuple[str, str, int], list[tuple[str, Resource]]] = {}
    for se in store.of("ServiceEntry"):
        export = strings(se.spec.get("exportTo"))
        scopes = {"*"} if not export or "*" in export else {
            se.namespace if e == "." else e for e in export}
        for scope in scopes:
            for host in strings(se.spec.get("hosts")):
                for port in as_list(se.spec.get("ports")):
                    number = as_dict(port).get("number")
                    if not isinstance(number, int):
                        continue
                    protocol = str(as_dict(port).get("protocol") or "")
                    index.setdefault((scope, host, number), []).append((protocol, se))
    reported: set[str] = set()
    for (scope, host, number), entries in sorted(index.items()):
        if scope != "*":
            entries = entries + index.get(("*", host, number), [])
        protocols = sorted({p.upper() for p, _ in entries})
        if len(protocols) < 2:
            continue
        names = ", ".join(sorted({se.full_name for _, se in entries}))
        for _, se in entries:
            if se.full_name in reported:
                continue
            reported.add(se.full_name)
            yield Message(msg.CONFLICTING_SERVICE_ENTRY_PROTOCOL,
                          (names, host, number, ", ".join(protocols)), se,
                          se.line_of("metadata", "name"))
