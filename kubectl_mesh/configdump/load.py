"""Reading dumps from files, stdin or bytes: JSON first (fast path), YAML as a fallback."""

from __future__ import annotations

import json
import sys
from typing import IO

from kubectl_mesh.configdump.dump import ConfigDump
from kubectl_mesh.errors import BadInputError, NotFoundError


def parse_document(data: bytes | str, source: str):
    """JSON or YAML text → Python object; BadInputError naming `source` otherwise."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    stripped = text.lstrip()
    if not stripped:
        raise BadInputError(f"{source} is empty; expected an Envoy config dump (JSON or YAML)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        if stripped[0] in "{[":
            raise BadInputError(
                f"{source} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno});"
                " truncated? expected an Envoy config dump"
            ) from e
    import yaml  # only YAML files need it: a live fetch is JSON, and yaml costs start-up
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise BadInputError(
            f"{source} is neither JSON nor YAML; expected an Envoy config dump"
        ) from e


def load_dump(data: bytes | str, source: str) -> ConfigDump:
    """Parse admin output (config_dump, a section, `?resource=` form or /clusters json)."""
    return ConfigDump(parse_document(data, source), source)


def read_dump(path: str, stdin: IO | None = None) -> ConfigDump:
    """`--file PATH` (`-` = stdin) → ConfigDump."""
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin
        data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
        return load_dump(data, "<stdin>")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as e:
        raise NotFoundError(f"file {path} not found") from e
    except OSError as e:
        raise BadInputError(f"cannot read {path}: {e.strerror}") from e
    return load_dump(data, path)
