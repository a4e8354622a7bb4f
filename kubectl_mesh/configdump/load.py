"""Reading dumps from files, stdin or bytes: JSON first (fast path), YAML as a fallback.

Input is bounded before it can cost more than the file suggests: at most `MAX_INPUT_BYTES`
are read, YAML at most `MAX_YAML_BYTES` (PyYAML is ~50x slower than json), YAML aliases may
add at most `MAX_ALIAS_NODES` nodes to the document (a few KB of nested aliases – the
"billion laughs" – would otherwise expand to gigabytes once the document is walked or
written), and YAML may nest at most `MAX_YAML_DEPTH` levels. go-yaml bounds aliases the same
way (gopkg.in/yaml.v3 decode.go, `allowedAliasRatio`); json already stops at Python's
recursion limit, which is turned into the same one-line error.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO

from kubectl_mesh.configdump.dump import ConfigDump
from kubectl_mesh.errors import BadInputError, NotFoundError

MAX_INPUT_BYTES = 1 << 30  # 1 GiB; the largest real dumps seen are ~200 MB
MAX_YAML_BYTES = 64 << 20
MAX_ALIAS_NODES = 1_000_000  # nodes aliases may add beyond the document's own
MAX_YAML_DEPTH = 256  # real dumps nest ~30 levels


def _size(n: int) -> str:
    return f"{n >> 30} GiB" if n >= 1 << 30 else f"{n >> 20} MiB"


def parse_document(data: bytes | str, source: str):
    """JSON or YAML text → Python object; BadInputError naming `source` otherwise."""
    if len(data) > MAX_INPUT_BYTES:
        raise BadInputError(f"{source} is larger than {_size(MAX_INPUT_BYTES)}; "
                            "expected an Envoy config dump")
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    stripped = text.lstrip()
    if not stripped:
        raise BadInputError(f"{source} is empty; expected an Envoy config dump (JSON or YAML)")
    try:
        return json.loads(text)
    except RecursionError as e:
        raise BadInputError(f"{source} nests too deeply to be an Envoy config dump") from e
    except json.JSONDecodeError as e:
        if stripped[0] in "{[":
            raise BadInputError(
                f"{source} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno});"
                " truncated? expected an Envoy config dump"
            ) from e
    return _parse_yaml(text, source)


def _parse_yaml(text: str, source: str):
    if len(text) > MAX_YAML_BYTES:
        raise BadInputError(f"{source} is not JSON, and YAML input is limited to "
                            f"{_size(MAX_YAML_BYTES)}; convert it to JSON")
    import yaml  # only YAML files need it: a live fetch is JSON, and yaml costs start-up

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_graph(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        if "nesting depth" in str(e):  # libyaml's own bound on nesting
            raise BadInputError(f"{source} nests too deeply to be an Envoy config dump") from e
        raise BadInputError(
            f"{source} is neither JSON nor YAML; expected an Envoy config dump"
        ) from e
    except RecursionError as e:
        raise BadInputError(f"{source} nests too deeply to be an Envoy config dump") from e
    finally:
        loader.dispose()


def _check_yaml_graph(root, source: str) -> None:
    """Measure the composed YAML graph as it would be once aliases are expanded – node count
    and depth, each node measured once – and reject recursive aliases, alias bombs and deep
    nesting before any of it is built."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the path from the root to the node being measured
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        kids = _children(node)
        if children_done:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if depth[key] > MAX_YAML_DEPTH:
                raise BadInputError(f"{source} nests deeper than {MAX_YAML_DEPTH} levels; "
                                    "expected an Envoy config dump")
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise BadInputError(f"{source} has a YAML alias that contains itself; "
                                "expected an Envoy config dump")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in size)
    if size[id(root)] > len(size) + MAX_ALIAS_NODES:
        raise BadInputError(f"{source}: YAML aliases expand it to {size[id(root)]:,} nodes "
                            f"(at most {MAX_ALIAS_NODES:,} more than written); an alias "
                            "bomb? expected an Envoy config dump")


def _children(node) -> list:
    value = node.value
    if not isinstance(value, list):  # a scalar
        return []
    if value and isinstance(value[0], tuple):  # a mapping: (key node, value node) pairs
        return [n for pair in value for n in pair]
    return value


def load_dump(data: bytes | str, source: str) -> ConfigDump:
    """Parse admin output (config_dump, a section, `?resource=` form or /clusters json)."""
    return ConfigDump(parse_document(data, source), source)


def read_input(path: str, stdin: IO | None = None) -> tuple[bytes, str]:
    """The bytes of `--file PATH` (`-` = stdin) and the name to report them under; at most
    MAX_INPUT_BYTES (BadInputError beyond), NotFoundError for a missing file."""
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin
        stream = getattr(stream, "buffer", stream)
        data = stream.read(MAX_INPUT_BYTES + 1)
        source = "<stdin>"
    else:
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size > MAX_INPUT_BYTES:
                    raise BadInputError(f"{path} is larger than {_size(MAX_INPUT_BYTES)}; "
                                        "expected an Envoy config dump")
                data = f.read(MAX_INPUT_BYTES + 1)
        except FileNotFoundError as e:
            raise NotFoundError(f"file {path} not found") from e
        except IsADirectoryError as e:
            raise BadInputError(f"{path} is a directory; expected an Envoy config dump") from e
        except OSError as e:
            raise BadInputError(f"cannot read {path}: {e.strerror}") from e
        source = path
    if len(data) > MAX_INPUT_BYTES:
        raise BadInputError(f"{source} is larger than {_size(MAX_INPUT_BYTES)}; "
                            "expected an Envoy config dump")
    return data, source


def read_dump(path: str, stdin: IO | None = None) -> ConfigDump:
    """`--file PATH` (`-` = stdin) → ConfigDump."""
    return load_dump(*read_input(path, stdin))
