"""Key-case normalisation: protojson's camelCase (`dynamicActiveClusters`) → Envoy's snake_case.

Envoy's admin API writes snake_case; dumps produced by protojson with default options (older
istioctl, hand-made fixtures) are camelCase. Rather than teach every accessor both spellings, each
resource is normalised ONCE, when it enters the model. Snake-case input (the common, possibly
18 MB case) is detected cheaply and returned untouched, without copying.
"""

from __future__ import annotations

import re
from typing import Any

# A proto field name in lowerCamelCase: starts lower-case, has an upper-case letter, no dots,
# dashes or '@' (those are map keys such as filter names or header names – never converted).
_CAMEL_KEY = re.compile(r"[a-z][a-z0-9]*[A-Z][A-Za-z0-9]*\Z")
_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake(key: str) -> str:
    """`dynamicActiveClusters` → `dynamic_active_clusters`; other keys (also the numbers
    YAML allows as keys) are returned unchanged."""
    if isinstance(key, str) and _CAMEL_KEY.match(key):
        return _HUMP.sub(r"_\1", key).lower()
    return key


# A proto field name in snake_case (what Envoy's admin API writes): lower-case letters and
# digits joined by single underscores; map keys with dots (filter names) never match.
_SNAKE_KEY = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+\Z")


def camel(key: str) -> str:
    """protojson's JSON name of a field (protoc `ToJsonName`: each underscore dropped and the
    next character upper-cased): `proxy_100_continue` → `proxy100Continue`,
    `http2_protocol_options` → `http2ProtocolOptions`. camelCase keys stay as they are."""
    if isinstance(key, str) and _SNAKE_KEY.match(key):
        first, *rest = key.split("_")
        return first + "".join(part[:1].upper() + part[1:] for part in rest)
    return key


def canonical(obj: Any) -> Any:
    """`obj` with every key in protojson's spelling, whichever spelling it came in. The
    snake → camel direction is a function of the name (camel → snake is not:
    `http2ProtocolOptions` and `proxy100Continue`), and applied to both sides of a
    comparison it also leaves `google.protobuf.Struct` keys (metadata, transport socket
    matches), which neither writer renames, equal to each other."""
    if isinstance(obj, dict):
        return {camel(key): canonical(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [canonical(item) for item in obj]
    return obj


def looks_camel(obj: Any) -> bool:
    """True if `obj` or its direct children use camelCase keys (checked two levels deep only)."""
    if not isinstance(obj, dict):
        return False
    for key, value in obj.items():
        if isinstance(key, str) and _CAMEL_KEY.match(key):
            return True
        child = value[0] if isinstance(value, list) and value else value
        if isinstance(child, dict) and any(isinstance(k, str) and _CAMEL_KEY.match(k)
                                           for k in child):
            return True
    return False


def normalise(obj: Any) -> Any:
    """Return `obj` with snake_case keys; snake-case input is returned as is (no copy)."""
    if isinstance(obj, list):
        return [normalise(item) for item in obj]
    if not looks_camel(obj):
        return obj
    cache: dict[str, str] = {}
    return _convert(obj, cache)


def _convert(obj: Any, cache: dict[str, str]) -> Any:
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            new = cache.get(key)
            if new is None:
                new = cache[key] = snake(key)
            out[new] = _convert(value, cache)
        return out
    if isinstance(obj, list):
        return [_convert(item, cache) for item in obj]
    return obj
