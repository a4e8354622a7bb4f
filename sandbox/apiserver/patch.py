"""JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch
(as far as the kinds served here need: lists of named things merge by `name`)."""

from __future__ import annotations

import copy


class PatchError(ValueError):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc, parts: list[str], path: str):
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise PatchError(f"path {path!r} not found") from None
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise PatchError(f"path {path!r} not found")
    return cur


def json_patch(doc: dict, ops: list) -> dict:
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        parts = _pointer(path)
        if kind == "test":
            if _resolve(doc, parts, path) != op.get("value"):
                raise PatchError(f"test failed at {path!r}")
            continue
        if kind in ("move", "copy"):
            src = _pointer(op["from"])
            value = copy.deepcopy(_resolve(doc, src, op["from"]))
            if kind == "move":
                _remove(doc, src, op["from"])
            _add(doc, parts, value, path)
            continue
        if kind == "add":
            _add(doc, parts, copy.deepcopy(op.get("value")), path)
        elif kind == "remove":
            _remove(doc, parts, path)
        elif kind == "replace":
            parent = _resolve(doc, parts[:-1], path)
            if isinstance(parent, list):
                parent[int(parts[-1])] = copy.deepcopy(op.get("value"))
            else:
                if parts[-1] not in parent:
                    raise PatchError(f"path {path!r} not found")
                parent[parts[-1]] = copy.deepcopy(op.get("value"))
        else:
            raise PatchError(f"unknown JSON patch op {kind!r}")
    return doc


def _add(doc, parts, value, path):
    if not parts:
        raise PatchError("cannot replace the whole document")
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                parent.insert(int(last), value)
            except ValueError:
                raise PatchError(f"invalid index in {path!r}") from None
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError(f"path {path!r} not found")


def _remove(doc, parts, path):
    parent = _resolve(doc, parts[:-1], path)
    try:
        del parent[int(parts[-1]) if isinstance(parent, list) else parts[-1]]
    except (KeyError, IndexError, ValueError):
        raise PatchError(f"path {path!r} not found") from None


def merge_patch(doc, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# list fields that merge by a key instead of being replaced
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "volumeMounts": "mountPath", "ports": None,
    "conditions": "type", "imagePullSecrets": "name",
}


def strategic_merge_patch(doc, patch):
    """Strategic merge: like merge patch, but named lists merge element-wise and
    `$patch: delete|replace` and `$retainKeys`/`$setElementOrder` directives are honoured."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            out[field] = [x for x in out.get(field, []) if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and k in _MERGE_KEYS and isinstance(out.get(k), list):
            out[k] = _merge_list(out[k], v, _MERGE_KEYS[k] or _port_key(v))
        elif isinstance(v, dict):
            out[k] = strategic_merge_patch(out.get(k), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _port_key(items: list) -> str:
    return "containerPort" if items and "containerPort" in items[0] else "port"


def _merge_list(current: list, patch: list, key: str) -> list:
    if not all(isinstance(x, dict) for x in current + patch):
        return copy.deepcopy(patch)
    out = copy.deepcopy(current)
    for item in patch:
        idx = next((i for i, c in enumerate(out) if c.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
        elif idx is None:
            out.append({k: v for k, v in item.items() if k != "$patch"})
        else:
            out[idx] = strategic_merge_patch(out[idx], item)
    return out
