"""Objects from files, folders and stdin: multi-document YAML (or JSON) and `List`s, each
object with its file and YAML node, so messages can name the line as istioctl does."""

from __future__ import annotations

import os
import sys
from typing import IO, Iterator, Optional, Sequence

from kubectl_mesh.analyze.resources import ISTIO_GROUPS, KINDS, Resource
from kubectl_mesh.errors import BadInputError, NotFoundError

# What istioctl analyze reads in a folder (istioctl/pkg/analyze/analyze.go fileExtensions).
EXTENSIONS = (".yaml", ".yml", ".json")


def gather(paths: Sequence[str], recursive: bool) -> list[str]:
    """The files `paths` mean: a file as given, a folder's YAML/JSON files (its subfolders with
    `recursive`, as `kubectl apply -f DIR -R`), `-` for stdin. NotFoundError for a missing one."""
    files: list[str] = []
    for path in paths:
        if path == "-":
            files.append(path)
        elif os.path.isdir(path):
            files.extend(_folder(path, recursive))
        elif os.path.exists(path):
            files.append(path)
        else:
            raise NotFoundError(f"{path}: no such file or directory")
    return files


def _folder(folder: str, recursive: bool) -> Iterator[str]:
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if name.endswith(EXTENSIONS):
                yield os.path.join(root, name)
        if not recursive:
            return


def read(files: Sequence[str], default_namespace: str, *, stdin: Optional[IO[str]] = None,
         warn=None) -> list[Resource]:
    """Every object of `files`; an object without a namespace gets `default_namespace` (as
    istioctl: the -n namespace, else `default`). BadInputError names the file and line of a
    document that is no YAML or no Kubernetes object."""
    resources: list[Resource] = []
    for path in files:
        if path == "-":
            text = (stdin or sys.stdin).read()
        else:
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError as e:
                raise NotFoundError(f"{path}: no such file or directory") from e
            except UnicodeDecodeError as e:
                raise BadInputError(f"{path}: not a text file ({e.reason})") from e
            except OSError as e:
                raise BadInputError(f"{path}: cannot read it: {e.strerror}") from e
        resources.extend(parse(text, path, default_namespace, warn=warn))
    return resources


def parse(text: str, source: str, default_namespace: str, *, warn=None) -> Iterator[Resource]:
    """The objects of one file's text (YAML documents; `List` items one by one)."""
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    try:
        while True:
            try:
                if not loader.check_node():
                    break
                node = loader.get_node()
                data = loader.construct_document(node)
            except yaml.MarkedYAMLError as e:
                mark = e.problem_mark or e.context_mark
                line = f":{mark.line + 1}" if mark is not None else ""
                raise BadInputError(f"{source}{line}: invalid YAML: {e.problem or e.context} "
                                    f"(fix the file, or leave it out)") from e
            except yaml.YAMLError as e:
                raise BadInputError(f"{source}: invalid YAML: {e}") from e
            if data is None:
                continue
            yield from _objects(data, node, source, default_namespace, warn)
    finally:
        loader.dispose()


def _objects(data, node, source: str, default_namespace: str, warn) -> Iterator[Resource]:
    line = node.start_mark.line + 1
    if not isinstance(data, dict):
        raise BadInputError(f"{source}:{line}: not a Kubernetes object (a document must be a "
                            f"mapping with apiVersion, kind and metadata)")
    kind, api_version = data.get("kind"), data.get("apiVersion")
    if not isinstance(kind, str) or not kind or not isinstance(api_version, str) or not api_version:
        missing = "kind" if not isinstance(kind, str) or not kind else "apiVersion"
        raise BadInputError(f"{source}:{line}: the object has no {missing} (every document "
                            f"needs apiVersion and kind)")
    if kind.endswith("List") and isinstance(data.get("items"), list):
        item_nodes = _value_node(node, "items")
        for i, item in enumerate(data["items"]):
            item_node = item_nodes.value[i] if item_nodes is not None else node
            yield from _objects(item, item_node, source, default_namespace, warn)
        return
    group = api_version.rpartition("/")[0]
    if kind not in KINDS:
        if group in ISTIO_GROUPS and warn is not None:
            warn(f"{source}:{line}: {kind} ({api_version}) is not a kind analyze reads; skipped")
        return
    if group not in ("",) + ISTIO_GROUPS:
        if warn is not None:
            warn(f"{source}:{line}: {kind} with apiVersion {api_version} is not a kind analyze "
                 f"reads; skipped")
        return
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        raise BadInputError(f"{source}:{line}: {kind} has no metadata.name")
    namespaced = KINDS[kind][2]
    namespace = (metadata.get("namespace") or default_namespace) if namespaced else ""
    yield Resource(kind, str(namespace), name, data, source=source, node=node)


def _value_node(node, key: str):
    for key_node, value in getattr(node, "value", ()):
        if getattr(key_node, "value", None) == key:
            return value
    return None
