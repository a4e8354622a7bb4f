"""Objects from the live cluster: one list request per kind, across all namespaces.

As istioctl analyze does, every namespace is read (a VirtualService in one namespace routes
through a Gateway whose pods run in another) and messages are kept for the selected namespace
afterwards. A kind the server does not serve (its CRD is not installed) or that RBAC does not
let us list is one warning line; analysis goes on without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from kubectl_mesh.analyze.resources import KINDS, Resource
from kubectl_mesh.errors import ForbiddenError, NotFoundError

# Secrets are only looked up by name (a Gateway's credentialName): ask for metadata only.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"


@dataclass
class ClusterObjects:
    resources: list[Resource] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)  # kinds RBAC did not let us list
    missing: set[str] = field(default_factory=set)  # kinds the server does not serve


def read(api, warn: Callable[[str], None], concurrency: int = 4,
         kinds: Optional[dict] = None) -> ClusterObjects:
    """Every object of the analyzed kinds (or of `kinds`, shaped like `resources.KINDS`), across
    all namespaces.

    A kind RBAC does not let us list cluster-wide is refused as a whole: the objects of one
    namespace would make every reference to another namespace (a DestinationRule in the
    service's namespace, the gateway's pods in istio-system) look missing."""
    from kubectl_mesh.session import for_each

    result = ClusterObjects()
    kinds = KINDS if kinds is None else kinds
    for kind, items, error in for_each(list(kinds), lambda k: _list(api, k, kinds[k]),
                                       concurrency=concurrency):
        prefix, plural, _ = kinds[kind]
        resource = plural + ("." + prefix.split("/")[2] if prefix.startswith("/apis/") else "")
        if isinstance(error, NotFoundError):
            result.missing.add(kind)
            warn(f"warning: the cluster does not serve {resource} (is its CRD installed?); "
                 f"analyzing without {kind} objects")
        elif isinstance(error, ForbiddenError) and "rejected our credentials" not in str(error):
            # a 403 for this kind; a 401 (no valid credentials at all) is the command's error
            result.refused.add(kind)
            warn(f"warning: {error.message}; the analyzers that need {kind} objects are "
                 f"skipped")
        elif error is not None:
            raise error
        else:
            result.resources.extend(items)
    return result


def _list(api, kind: str, where: tuple[str, str, bool]) -> list[Resource]:
    prefix, plural, namespaced = where
    headers = {"Accept": METADATA_ONLY} if kind == "Secret" else None
    answer = api.request("GET", f"{prefix}/{plural}", headers=headers)
    out = []
    for item in (answer or {}).get("items") or []:
        metadata = item.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            continue
        out.append(Resource(kind, metadata.get("namespace") or "" if namespaced else "",
                            name, item))
    return out


INJECTOR_CONFIG_MAP = "istio-sidecar-injector"


def injector_config_maps(api, istio_namespace: str, warn: Callable[[str], None]) -> list[Resource]:
    """The injectors' ConfigMaps (`istio-sidecar-injector[-REV]`, what injection.ImageAnalyzer
    compares proxy images with): one list request in the Istio namespace, not every
    ConfigMap of the cluster; refused or missing: one warning line, and the analyzer sees none."""
    from kubectl_mesh.errors import MeshError

    try:
        items = api.list_resource("configmaps", istio_namespace)
    except MeshError as e:
        warn(f"warning: cannot list ConfigMaps in {istio_namespace} ({e}); proxy images are not "
             f"compared with the injector's")
        return []
    out = []
    for item in items:
        metadata = item.get("metadata") or {}
        name = metadata.get("name") or ""
        if name.startswith(INJECTOR_CONFIG_MAP):
            out.append(Resource("ConfigMap", metadata.get("namespace") or istio_namespace, name,
                                item))
    return out
