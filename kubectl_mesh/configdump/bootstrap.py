"""The bootstrap section (BootstrapConfigDump): the proxy's versions, node identity, admin
address, xDS servers and static resources, as one key/value table.

The first three rows are istioctl's `proxy-config bootstrap -o short` (istioctl/pkg/writer/
envoy/configdump/configdump.go `PrintBootstrapSummary`, `getIstioVersionInfo`,
`getUserAgentVersionInfo`): same labels, same values, left out when empty as istioctl does."""

from __future__ import annotations

from kubectl_mesh.configdump.common import Table, socket_address
from kubectl_mesh.configdump.keys import normalise
from kubectl_mesh.configdump.shape import Malformed


def bootstrap_of(section: dict) -> dict:
    """The `bootstrap` message of a BootstrapConfigDump section (snake_case keys)."""
    boot = section.get("bootstrap")
    if boot is None:
        return {}
    if not isinstance(boot, dict):
        raise Malformed("bootstrap", "not an object")
    return normalise(boot)


def istio_versions(boot: dict) -> tuple[str, str]:
    """(ISTIO_VERSION, the sha after ':' in ISTIO_PROXY_SHA) from the node metadata."""
    meta = (boot.get("node") or {}).get("metadata") or {}
    version = meta.get("ISTIO_VERSION")
    sha = meta.get("ISTIO_PROXY_SHA")
    version = version if isinstance(version, str) else ""
    sha = sha if isinstance(sha, str) else ""
    parts = sha.split(":")
    return version, parts[1] if len(parts) > 1 else sha


def envoy_version(boot: dict) -> str:
    """`1.40.0[-label][/status][/type][/ssl]` from `node.user_agent_build_version`, as
    istioctl's getUserAgentVersionInfo writes it (0.0.0 when Envoy sent none)."""
    build = (boot.get("node") or {}).get("user_agent_build_version") or {}
    version = build.get("version") or {}
    meta = build.get("metadata") or {}
    text = (f"{version.get('major_number', 0)}.{version.get('minor_number', 0)}"
            f".{version.get('patch', 0)}")
    for key, sep in (("build.label", "-"), ("revision.status", "/"), ("build.type", "/"),
                     ("ssl.version", "/")):
        if key in meta:
            text += sep + str(meta[key])
    return text


def _address(address: dict | None) -> str:
    host, port = socket_address(address)
    return f"{host}:{port}" if host and port is not None else host


def xds_servers(boot: dict) -> list[str]:
    """`ADS GRPC xds-grpc 10.0.0.1:15012` for each gRPC service of `ads_config`: the API
    type, the cluster (or Google gRPC target) and, for a static cluster, its address."""
    dynamic = boot.get("dynamic_resources") or {}
    static = {c.get("name"): c for c in (boot.get("static_resources") or {}).get("clusters") or []
              if isinstance(c, dict)}
    servers = []
    for kind, source in (("ADS", dynamic.get("ads_config")),):
        if not isinstance(source, dict):
            continue
        api = source.get("api_type") or ""
        for service in source.get("grpc_services") or []:
            envoy = service.get("envoy_grpc") or {}
            google = service.get("google_grpc") or {}
            name = envoy.get("cluster_name") or google.get("target_uri") or ""
            where = ", ".join(cluster_addresses(static.get(name) or {}))
            servers.append(" ".join(p for p in (kind, api, name, where) if p))
    return servers


def cluster_addresses(cluster: dict) -> list[str]:
    """The endpoint addresses of a static cluster's load assignment."""
    out = []
    for group in (cluster.get("load_assignment") or {}).get("endpoints") or []:
        for lb in group.get("lb_endpoints") or []:
            address = _address((lb.get("endpoint") or {}).get("address"))
            if address:
                out.append(address)
    return out


def bootstrap_table(section: dict) -> Table:
    """`Label:  value` rows (tabwriter padding 1, as istioctl's summary); data is the section
    as Envoy gave it (what `-o json|yaml` prints)."""
    boot = bootstrap_of(section)
    node = boot.get("node") or {}
    istio, sha = istio_versions(boot)
    rows: list[tuple[str, str]] = []
    if istio:
        rows.append(("Istio Version:", istio))
    if sha:
        rows.append(("Istio Proxy Version:", sha))
    rows.append(("Envoy Version:", envoy_version(boot)))
    for label, key in (("Node ID:", "id"), ("Cluster:", "cluster")):
        if node.get(key):
            rows.append((label, str(node[key])))
    admin = _address((boot.get("admin") or {}).get("address"))
    if admin:
        rows.append(("Admin:", admin))
    for server in xds_servers(boot):
        rows.append(("xDS Server:", server))
    static = boot.get("static_resources") or {}
    clusters = [c.get("name", "") for c in static.get("clusters") or [] if isinstance(c, dict)]
    if clusters:
        rows.append(("Static Clusters:", ", ".join(clusters)))
    listeners = [lst.get("name") or _address(lst.get("address"))
                 for lst in static.get("listeners") or [] if isinstance(lst, dict)]
    if listeners:
        rows.append(("Static Listeners:", ", ".join(listeners)))
    # The first row is the "header": render_table aligns every row alike, as tabwriter.
    return Table(rows[0], rows[1:], section, gap=1)
