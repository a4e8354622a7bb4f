"""Objects from files, folders and stdin: multi-document YAML (or JSON) and `List`s, each
object with its file and YAML node, so messages can name the line as istioctl does."""

from __future__ import annotations

import os
import re
import sys
from typing import IO, Iterator, Optional, Sequence

from kubectl_mesh.analyze import fastyaml
from kubectl_mesh.analyze.resources import ISTIO_GROUPS, ISTIO_KINDS, KINDS, Document, Resource
from kubectl_mesh.errors import BadInputError, NotFoundError

_KIND_LINE = re.compile(r"^kind:[ \t]*([A-Za-z0-9]+)[ \t]*$", re.MULTILINE)
_API_VERSION_LINE = re.compile(r"^apiVersion:[ \t]*[A-Za-z0-9./-]+[ \t]*$", re.MULTILINE)
_NAME = re.compile(r"^metadata:(?:[ \t]*\{.*\bname:[ \t]*[A-Za-z0-9]|[ \t]*\n(?:  .*\n)*?  name:[ \t]*[A-Za-z0-9])",
                   re.MULTILINE)
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
         warn=None, skip_kinds: frozenset = frozenset()) -> list[Resource]:
    """Every object of `files`; an object without a namespace gets `default_namespace` (as
    istioctl: the -n namespace, else `default`). BadInputError names the file and line of a
    document that is no YAML or no Kubernetes object. A document whose top-level `kind:` line
    names one of `skip_kinds` (kinds no analyzer of this run reads) is not parsed at all."""
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
        resources.extend(parse(text, path, default_namespace, warn=warn, skip_kinds=skip_kinds))
    return resources


def parse(text: str, source: str, default_namespace: str, *, warn=None,
          skip_kinds: frozenset = frozenset()) -> Iterator[Resource]:
    """The objects of one file's text (YAML documents or JSON; `List` items one by one).

    Documents are split at `---` lines and read by `fastyaml` (PyYAML for what it leaves);
    a file whose documents cannot be split that simply (directives, `--- value`) is read by
    PyYAML whole."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        import json

        try:
            data = json.loads(text)
        except ValueError:
            pass  # not JSON after all: YAML reports where it breaks
        else:
            yield from _objects(data, Document(text, 0), (), source, default_namespace, warn)
            return
    documents = _split(text)
    if documents is None:
        yield from _parse_whole(text, source, default_namespace, warn, loader)
        return
    scalars: dict[str, object] = {}

    def scalar(plain: str):
        if plain not in scalars:
            try:
                scalars[plain] = yaml.load(plain, Loader=loader)
            except yaml.YAMLError:
                raise fastyaml.Unsupported("scalar") from None
        return scalars[plain]

    for first_line, body in documents:
        if skip_kinds and _skippable(body, skip_kinds):
            continue
        try:
            data = fastyaml.load(body, scalar)
        except fastyaml.Unsupported:
            try:
                data = yaml.load(body, Loader=loader)
            except yaml.YAMLError as e:
                raise _yaml_error(e, source, first_line) from e
        if data is None:
            continue
        yield from _objects(data, Document(body, first_line), (), source, default_namespace, warn)


def _skippable(body: str, skip_kinds: frozenset) -> bool:
    """Whether a document is plainly an object of `skip_kinds` (top-level kind, apiVersion and
    a metadata name); anything less plain is parsed, so its errors are still reported."""
    kind = _KIND_LINE.search(body)
    return (kind is not None and kind.group(1) in skip_kinds
            and _API_VERSION_LINE.search(body) is not None and _NAME.search(body) is not None)


def _split(text: str):
    """[(first line, text)] of the documents, or None when `---` lines are not plain."""
    documents = []
    lines = text.split("\n")
    start = 0
    for number, line in enumerate(lines):
        if line.startswith(("---", "...", "%")):
            if line.rstrip() != "---":
                return None
            documents.append((start, "\n".join(lines[start:number])))
            start = number + 1
    documents.append((start, "\n".join(lines[start:])))
    return documents


def _yaml_error(e, source: str, first_line: int) -> BadInputError:
    import yaml

    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1 + first_line}" if mark is not None else ""
        return BadInputError(f"{source}{line}: invalid YAML: {e.problem or e.context} "
                             f"(fix the file, or leave it out)")
    return BadInputError(f"{source}: invalid YAML: {e}")


def _parse_whole(text: str, source: str, default_namespace: str, warn, loader):
    import yaml

    reader = loader(text)
    try:
        while True:
            try:
                if not reader.check_node():
                    break
                node = reader.get_node()
                data = reader.construct_document(node)
            except yaml.YAMLError as e:
                raise _yaml_error(e, source, 0) from e
            if data is None:
                continue
            yield from _objects(data, Document(None, 0, node), (), source, default_namespace,
                                warn)
    finally:
        reader.dispose()


def _objects(data, document: Document, prefix: tuple, source: str, default_namespace: str,
             warn) -> Iterator[Resource]:
    line = document.first_line + 1
    if not isinstance(data, dict):
        raise BadInputError(f"{source}:{line}: not a Kubernetes object (a document must be a "
                            f"mapping with apiVersion, kind and metadata)")
    kind, api_version = data.get("kind"), data.get("apiVersion")
    if not isinstance(kind, str) or not kind or not isinstance(api_version, str) or not api_version:
        missing = "kind" if not isinstance(kind, str) or not kind else "apiVersion"
        raise BadInputError(f"{source}:{line}: the object has no {missing} (every document "
                            f"needs apiVersion and kind)")
    if kind.endswith("List") and isinstance(data.get("items"), list):
        for i, item in enumerate(data["items"]):
            yield from _objects(item, document, prefix + ("items", i), source,
                                default_namespace, warn)
        return
    group = api_version.rpartition("/")[0]
    if group in ISTIO_KINDS and kind not in ISTIO_KINDS[group]:
        import difflib

        close = difflib.get_close_matches(kind, sorted(ISTIO_KINDS[group]), n=1)
        raise BadInputError(f"{source}:{line}: {api_version} has no kind {kind!r}"
                            + (f" (did you mean {close[0]!r}?)" if close else
                               f" (it has {', '.join(sorted(ISTIO_KINDS[group]))})"))
    if kind not in KINDS:
        return
    if group != _group_of(kind):
        if warn is not None:
            warn(f"warning: {source}:{line}: {kind} with apiVersion {api_version} is not a "
                 f"kind analyze reads; skipped")
        return
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        raise BadInputError(f"{source}:{line}: {kind} has no metadata.name")
    namespaced = KINDS[kind][2]
    namespace = (metadata.get("namespace") or default_namespace) if namespaced else ""
    yield Resource(kind, str(namespace), name, data, source=source, document=document,
                   prefix=prefix)


def _group_of(kind: str) -> str:
    """The API group analyze reads `kind` from (KINDS' path prefix: `/apis/apps/v1` -> apps)."""
    prefix = KINDS[kind][0]
    return prefix.split("/")[2] if prefix.startswith("/apis/") else ""
