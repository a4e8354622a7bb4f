"""The mesh config the analyzers use: `--meshConfigFile` (istioctl's flag), else istiod's
ConfigMap live (`istio`, or `istio-<rev>` for a revision, key `mesh`: pilot/pkg/bootstrap/mesh.go
getMeshConfigMapName), else Istio's defaults. A file or ConfigMap is laid over the defaults
(pkg/config/mesh/mesh.go ApplyMeshConfigDefaults); only the fields analyzers read are kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from kubectl_mesh.errors import BadInputError, MeshError, NotFoundError

CONFIG_MAP = "istio"
KEY = "mesh"
ISTIO_NAMESPACE = "istio-system"


@dataclass(frozen=True)
class MeshConfig:
    """mesh.DefaultMeshConfig's rootNamespace and trustDomain, and defaultConfig's
    proxyMetadata; `source` says where it came from (for messages)."""

    root_namespace: str = ISTIO_NAMESPACE
    trust_domain: str = "cluster.local"
    proxy_metadata: dict = field(default_factory=dict)
    image_type: str = ""  # defaultConfig.image.imageType (distroless, debug, ...)
    source: str = "defaults"


def parse(text: str, source: str) -> MeshConfig:
    """A MeshConfig YAML document over the defaults; BadInputError naming `source` for what
    is not one."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise BadInputError(f"{source}{where}: invalid YAML in the mesh config",
                            hint="give a MeshConfig document, e.g. 'rootNamespace: istio-system'"
                            ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInputError(f"{source}: the mesh config is not a mapping of MeshConfig fields",
                            hint="e.g. 'rootNamespace: istio-system'")
    defaults = MeshConfig()
    default_config = data.get("defaultConfig")
    metadata = default_config.get("proxyMetadata") if isinstance(default_config, dict) else None
    return MeshConfig(
        root_namespace=_string(data.get("rootNamespace")) or defaults.root_namespace,
        trust_domain=_string(data.get("trustDomain")) or defaults.trust_domain,
        proxy_metadata={str(k): str(v) for k, v in metadata.items()}
        if isinstance(metadata, dict) else {},
        image_type=_string(_image(default_config).get("imageType")),
        source=source)


def from_file(path: str) -> MeshConfig:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise NotFoundError(f"mesh config file {path!r} not found",
                            hint="check --meshConfigFile") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInputError(f"cannot read mesh config file {path!r}: {e}",
                            hint="check --meshConfigFile") from None
    return parse(text, path)


def config_map_name(revision: Optional[str]) -> str:
    """getMeshConfigMapName: `istio`, or `istio-<rev>` for a revision other than default."""
    return CONFIG_MAP if not revision or revision == "default" else f"{CONFIG_MAP}-{revision}"


def from_cluster(api, istio_namespace: str, revision: Optional[str],
                 warn: Callable[[str], None]) -> MeshConfig:
    """istiod's mesh config of `revision`; a missing or unreadable ConfigMap is one warning
    line and the defaults (analysis goes on, as istioctl's does)."""
    name = config_map_name(revision)
    where = f"ConfigMap {istio_namespace}/{name}"
    try:
        cm = api.get_resource("configmaps", istio_namespace, name, allow_missing=True)
    except MeshError as e:
        warn(f"warning: cannot read the mesh config ({where}): {e}; using Istio's defaults")
        return MeshConfig()
    if cm is None:
        warn(f"warning: no mesh config {where} (is istiod{' ' + revision if revision else ''} "
             f"installed there? see --istioNamespace, --revision); using Istio's defaults")
        return MeshConfig()
    text = _data(cm).get(KEY)
    if not isinstance(text, str):
        warn(f"warning: {where} has no key {KEY!r}; using Istio's defaults")
        return MeshConfig()
    try:
        return parse(text, f"{where} key {KEY}")
    except BadInputError as e:
        warn(f"warning: {e}; using Istio's defaults")
        return MeshConfig()


def _data(cm: Any) -> dict:
    data = cm.get("data") if isinstance(cm, dict) else None
    return data if isinstance(data, dict) else {}


def _image(default_config: Any) -> dict:
    image = default_config.get("image") if isinstance(default_config, dict) else None
    return image if isinstance(image, dict) else {}


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
