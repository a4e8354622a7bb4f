"""`ConfigDump`: one parsed admin response, sections found by type, parsed lazily and once.

Accepts a full `/config_dump`, a masked or single-section dump, the `?resource=` form
(`{"configs": [<DynamicCluster>, ...]}`), a bare section object, and Envoy's
`/clusters?format=json` (endpoints only). Anything else raises `BadInputError` naming the source.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

from kubectl_mesh.configdump.common import type_name
from kubectl_mesh.configdump.keys import normalise, snake
from kubectl_mesh.configdump.shape import Malformed
from kubectl_mesh.errors import BadInputError

# section name → admin message name (same in envoy.admin.v2alpha and v3)
SECTION_TYPES = {
    "bootstrap": "BootstrapConfigDump",
    "clusters": "ClustersConfigDump",
    "endpoints": "EndpointsConfigDump",
    "listeners": "ListenersConfigDump",
    "scoped_routes": "ScopedRoutesConfigDump",
    "routes": "RoutesConfigDump",
    "secrets": "SecretsConfigDump",
    "ecds": "EcdsConfigDump",
}
_SECTION_BY_TYPE = {v: k for k, v in SECTION_TYPES.items()}

# Fields that identify a section when `@type` is missing (hand-trimmed files).
_SECTION_FIELDS = {
    "bootstrap": ("bootstrap",),
    "clusters": ("static_clusters", "dynamic_active_clusters", "dynamic_warming_clusters"),
    "endpoints": ("static_endpoint_configs", "dynamic_endpoint_configs"),
    "listeners": ("static_listeners", "dynamic_listeners"),
    "routes": ("static_route_configs", "dynamic_route_configs"),
    "secrets": ("static_secrets", "dynamic_active_secrets", "dynamic_warming_secrets"),
    "ecds": ("ecds_filters",),
}

# `?resource=<field>` answers with a list of element messages; map them back to their field.
_ELEMENT_FIELDS = {
    "ClustersConfigDump.StaticCluster": ("clusters", "static_clusters"),
    "ClustersConfigDump.DynamicCluster": ("clusters", "dynamic_active_clusters"),
    "EndpointsConfigDump.StaticEndpointConfig": ("endpoints", "static_endpoint_configs"),
    "EndpointsConfigDump.DynamicEndpointConfig": ("endpoints", "dynamic_endpoint_configs"),
    "ListenersConfigDump.StaticListener": ("listeners", "static_listeners"),
    "ListenersConfigDump.DynamicListener": ("listeners", "dynamic_listeners"),
    "RoutesConfigDump.StaticRouteConfig": ("routes", "static_route_configs"),
    "RoutesConfigDump.DynamicRouteConfig": ("routes", "dynamic_route_configs"),
    "SecretsConfigDump.StaticSecret": ("secrets", "static_secrets"),
    "SecretsConfigDump.DynamicSecret": ("secrets", "dynamic_active_secrets"),
}

_ZTUNNEL_KEYS = {"workloads", "services", "policies", "certificates"}


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """The proxy's identity from BootstrapConfigDump."""

    node_id: str
    cluster: str
    istio_version: str
    envoy_version: str
    raw: dict = dataclasses.field(repr=False, compare=False)


class ConfigDump:
    """A parsed admin response. Section properties parse on first use and are cached."""

    def __init__(self, raw: Any, source: str):
        self.source = source
        self.kind, self._sections, self._origins = _classify(raw, source)
        self._raw = raw

    @property
    def raw(self) -> Any:
        """The document as read (for `-o json` of a whole dump)."""
        return self._raw

    def has(self, section: str) -> bool:
        """Whether the input carries `section` (one of SECTION_TYPES, `endpoints` also for /clusters)."""
        if self.kind == "clusters_status":
            return section == "endpoints"
        return section in self._sections

    def section(self, section: str) -> dict:
        """The raw (key-normalised at top level) section dict; BadInputError if absent."""
        if self.kind == "clusters_status":
            raise BadInputError(
                f"{self.source} is Envoy /clusters output, which has endpoints only, not {section}",
                hint="pass a /config_dump file",
            )
        if section not in self._sections:
            present = ", ".join(sorted(self._sections)) or "none"
            raise BadInputError(
                f"{self.source} has no {section} section ({SECTION_TYPES.get(section, section)});"
                f" sections present: {present}"
            )
        return self._sections[section]

    def at(self, section: str) -> Callable[[str, int], str]:
        """`at(field, i)`: the JSON path in the document of element `i` of a section field
        (`configs[2].dynamic_active_clusters[5]`), for the models' error messages."""
        origin = self._origins.get(section, "")
        if isinstance(origin, dict):  # `?resource=` form: each element is one of `configs`
            return lambda field, i: f"configs[{origin[field][i]}]"
        if origin:
            return lambda field, i: f"{origin}.{field}[{i}]"
        return lambda field, i: f"{field}[{i}]"

    def _parsed(self, section: str, parse: Callable):
        """`parse(raw section, at)`; a Malformed element becomes a BadInputError naming the
        source and the element's JSON path."""
        raw = self.section(section)
        try:
            return parse(raw, self.at(section))
        except Malformed as e:
            raise BadInputError(f"{self.source}: {e}; expected an Envoy config dump") from e

    @functools.cached_property
    def bootstrap(self) -> Bootstrap:
        boot = normalise(self.section("bootstrap")).get("bootstrap") or {}
        node = boot.get("node") or {}
        meta = node.get("metadata") or {}
        envoy = node.get("build_version") or ""
        ua = (node.get("user_agent_build_version") or {}).get("version") or {}
        if ua:
            envoy = f"{ua.get('major_number', 0)}.{ua.get('minor_number', 0)}.{ua.get('patch', 0)}"
        return Bootstrap(
            node_id=node.get("id", ""),
            cluster=node.get("cluster", ""),
            istio_version=str(meta.get("ISTIO_VERSION", "")),
            envoy_version=envoy,
            raw=boot,
        )

    @functools.cached_property
    def clusters(self):
        from kubectl_mesh.configdump.clusters import parse_clusters

        return self._parsed("clusters", parse_clusters)

    @functools.cached_property
    def listeners(self):
        from kubectl_mesh.configdump.listeners import parse_listeners

        return self._parsed("listeners", parse_listeners)

    @functools.cached_property
    def routes(self):
        from kubectl_mesh.configdump.routes import parse_route_configs

        return self._parsed("routes", parse_route_configs)

    @functools.cached_property
    def endpoints(self):
        from kubectl_mesh.configdump.endpoints import parse_clusters_status, parse_eds

        if self.kind == "clusters_status":
            try:
                return parse_clusters_status(self._raw)
            except Malformed as e:
                raise BadInputError(f"{self.source}: {e}; expected Envoy's /clusters?format=json "
                                    "output") from e
        return self._parsed("endpoints", parse_eds)

    @functools.cached_property
    def secrets(self):
        from kubectl_mesh.configdump.secrets import parse_secrets

        return self._parsed("secrets", parse_secrets)

    @functools.cached_property
    def ecds(self):
        """The extension configs (ECDS); none when the dump has no EcdsConfigDump, which Envoy
        leaves out while no filter is configured over ECDS."""
        from kubectl_mesh.configdump.ecds import parse_ecds

        if "ecds" not in self._sections and self.kind == "config_dump":
            return []
        return self._parsed("ecds", parse_ecds)


def _classify(raw: Any, source: str) -> tuple[str, dict[str, dict], dict[str, Any]]:
    """Tell what kind of admin output `raw` is and index its sections by name; also where
    each section is in the document (`configs[i]`, or per field the `configs` index of each
    element in the `?resource=` form)."""
    if isinstance(raw, list):
        if raw and isinstance(raw[0], dict) and {"connections", "info"} <= raw[0].keys():
            raise BadInputError(
                f"{source} is a ztunnel connections dump, not an Envoy config dump",
                hint="ztunnel is not Envoy; expected the output of Envoy's /config_dump",
            )
        raise BadInputError(f"{source} is a JSON list, not an Envoy config dump (expected an object)")
    if not isinstance(raw, dict):
        raise BadInputError(
            f"{source} is not an Envoy config dump (expected a JSON/YAML object, got {type(raw).__name__})"
        )
    if _ZTUNNEL_KEYS & raw.keys() and "configs" not in raw:
        raise BadInputError(
            f"{source} is a ztunnel config dump, not an Envoy config dump",
            hint="ztunnel is not Envoy; expected the output of Envoy's /config_dump",
        )
    if "cluster_statuses" in raw or "clusterStatuses" in raw:
        return "clusters_status", {}, {}
    configs = raw.get("configs")
    bare = configs is None
    if bare:
        if not raw:  # `?resource=` that matched nothing answers `{}`
            return "config_dump", {}, {}
        if _section_of(raw) is None:
            keys = ", ".join(sorted(raw)[:6]) or "none"
            raise BadInputError(
                f"{source} is JSON but not an Envoy config dump (no 'configs' list; top-level keys: {keys})"
            )
        configs = [raw]
    if not isinstance(configs, list):
        raise BadInputError(f"{source}: 'configs' is not a list; expected an Envoy config dump")
    sections: dict[str, dict] = {}
    origins: dict[str, Any] = {}
    for index, item in enumerate(configs):
        if not isinstance(item, dict):
            continue
        element = _ELEMENT_FIELDS.get(type_name(item.get("@type")))
        if element is not None:
            name, field = element
            if not isinstance(origins.get(name, {}), dict):
                continue  # the whole section is there already
            sections.setdefault(name, {}).setdefault(field, []).append(item)
            origins.setdefault(name, {}).setdefault(field, []).append(index)
            continue
        name = _section_of(item)
        if name == "ecds" and name in sections:
            # Envoy writes one EcdsConfigDump per filter kind (http, network, listener):
            # their extension configs together, as istioctl's GetEcdsConfigDump merges them.
            more = {snake(k): v for k, v in item.items()}.get("ecds_filters")
            if isinstance(more, list):
                merged = sections[name].get("ecds_filters")
                sections[name]["ecds_filters"] = (merged if isinstance(merged, list) else []) + more
            continue
        if name is not None:
            # Only the top-level keys are normalised here; elements are normalised when parsed.
            sections[name] = {snake(k): v for k, v in item.items()}
            origins[name] = "" if bare else f"configs[{index}]"
    return "config_dump", sections, origins


def _section_of(item: dict) -> str | None:
    name = _SECTION_BY_TYPE.get(type_name(item.get("@type")))
    if name is not None:
        return name
    keys = {snake(k) for k in item}
    for section, fields in _SECTION_FIELDS.items():
        if keys & set(fields):
            return section
    return None
