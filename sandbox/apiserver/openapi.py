"""A minimal OpenAPI v3 surface: enough for kubectl to learn that every kind accepts
`fieldValidation` on PATCH (so it lets the server validate instead of downloading schemas)."""

from __future__ import annotations

from . import kinds


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def root() -> dict:
    paths = {}
    for k in kinds.KINDS:
        for v in k.versions:
            p = _gv_path(k.group, v)
            paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash=sandbox"}
    return {"paths": paths}


def group_version(path: str) -> dict | None:
    parts = path.split("/")
    group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
    found = [k for k in kinds.KINDS if k.group == group and version in k.versions]
    if not found:
        return None
    params = [{"name": n, "in": "query", "schema": {"type": "string"}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
    paths = {}
    for k in found:
        base = f"/{_gv_path(group, version)}/" + ("namespaces/{namespace}/" if k.namespaced else "")
        gvk = {"group": group, "version": version, "kind": k.kind}
        op = {"x-kubernetes-group-version-kind": gvk, "parameters": params,
              "responses": {"200": {"description": "OK"}}}
        paths[base + k.plural + "/{name}"] = {"get": op, "put": op, "patch": op, "delete": op}
        paths[base + k.plural] = {"get": op, "post": op}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.37.1"},
            "paths": paths, "components": {"schemas": {}}}
