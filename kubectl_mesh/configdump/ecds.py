"""Extension configs (EcdsConfigDump): the typed extension configs Envoy got over ECDS, and
istioctl's `proxy-config ecds` table (istioctl/pkg/writer/envoy/configdump/ecds.go
`PrintEcdsSummary`: ECDS NAME, TYPE; sorted by type URL, then name; tabwriter padding 5)."""

from __future__ import annotations

import dataclasses

from kubectl_mesh.configdump.common import Table
from kubectl_mesh.configdump.keys import normalise
from kubectl_mesh.configdump.shape import SHAPE_ERRORS, Malformed, elements, relative, text

TYPE_URL_PREFIX = "type.googleapis.com/"


@dataclasses.dataclass(frozen=True)
class ExtensionConfig:
    name: str
    type_url: str  # of its typed_config
    version_info: str
    last_updated: str
    raw: dict = dataclasses.field(repr=False, compare=False)


def parse_ecds(section: dict, at=relative) -> list[ExtensionConfig]:
    """EcdsConfigDump → extension configs; Malformed names the JSON path of a bad one."""
    out = []
    for path, item in elements(section, "ecds_filters", at):
        try:
            item = normalise(item)
            config = item.get("ecds_filter") or {}
            typed = config.get("typed_config") or {}
            out.append(ExtensionConfig(text(config, "name"), text(typed, "@type"),
                                       text(item, "version_info"), text(item, "last_updated"),
                                       item))
        except (Malformed, *SHAPE_ERRORS) as e:
            raise Malformed.of(path, e) from e
    return out


def ecds_table(configs: list[ExtensionConfig], wide: bool = False) -> Table:
    """istioctl's ECDS NAME / TYPE rows; wide adds VERSION and LAST UPDATED."""
    ordered = sorted(configs, key=lambda c: (c.type_url, c.name))
    rows = []
    for c in ordered:
        row = (c.name, c.type_url.removeprefix(TYPE_URL_PREFIX))
        rows.append(row + ((c.version_info, c.last_updated) if wide else ()))
    headers = ("ECDS NAME", "TYPE") + (("VERSION", "LAST UPDATED") if wide else ())
    return Table(headers, rows, [c.raw for c in ordered])
