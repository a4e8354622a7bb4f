"""The mesh's default proxy log level, as Istio's injector renders it: `global.proxy.logLevel`
in the `values` JSON of the `istio-sidecar-injector` ConfigMap in istio-system, else
`warning`. `--reset` goes back to it and says where it came from."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kubectl_mesh.errors import ForbiddenError, UsageError
from kubectl_mesh.loglevel.levels import FALLBACK_LEVEL, normalize_level

INJECTOR_NAMESPACE = "istio-system"
INJECTOR_CONFIGMAP = "istio-sidecar-injector"


@dataclass(frozen=True)
class MeshDefault:
    level: str
    source: str  # told to the user: where the level came from, or why the fallback

    def __str__(self) -> str:
        return f"{self.level} ({self.source})"


def from_configmap(configmap: dict | None) -> MeshDefault:
    """The default from the ConfigMap object (None = it does not exist)."""
    where = f"configmap {INJECTOR_NAMESPACE}/{INJECTOR_CONFIGMAP}"
    if configmap is None:
        return MeshDefault(FALLBACK_LEVEL, f"Istio's default: there is no {where}")
    raw = (configmap.get("data") or {}).get("values")
    if not raw:
        return MeshDefault(FALLBACK_LEVEL, f"Istio's default: {where} has no 'values'")
    try:
        values = json.loads(raw)
    except ValueError:
        return MeshDefault(FALLBACK_LEVEL, f"Istio's default: 'values' in {where} is not JSON")
    level = ((values.get("global") or {}).get("proxy") or {}).get("logLevel") \
        if isinstance(values, dict) else None
    if not level:
        return MeshDefault(FALLBACK_LEVEL, f"Istio's default: {where} sets no "
                                           "global.proxy.logLevel")
    try:
        return MeshDefault(normalize_level(str(level)), f"global.proxy.logLevel in {where}")
    except UsageError:
        return MeshDefault(FALLBACK_LEVEL, f"Istio's default: global.proxy.logLevel {level!r} "
                                           f"in {where} is not a level")


def mesh_default(api) -> MeshDefault:
    """Read the ConfigMap through `api` (kube.api.KubeApi); a forbidden read falls back."""
    try:
        configmap = api.get_resource("configmaps", INJECTOR_NAMESPACE, INJECTOR_CONFIGMAP,
                                     allow_missing=True)
    except ForbiddenError:
        return MeshDefault(FALLBACK_LEVEL, f"Istio's default: not allowed to get configmap "
                                           f"{INJECTOR_NAMESPACE}/{INJECTOR_CONFIGMAP}")
    return from_configmap(configmap)
