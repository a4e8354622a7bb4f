"""A fast reader for the plain YAML Kubernetes manifests are mostly written in, with PyYAML for
everything else.

PyYAML builds a Python object per node and resolves every scalar in Python: ~80 µs per object
of a manifest, 1.2 s of CPU for 15,000 objects. This reader takes one line at a time: block
mappings and sequences by indentation, single-line flow collections (`{a: b}`, `[a, b]`),
plain and quoted single-line scalars. Whatever else it meets in a document (anchors, tags,
block scalars `|`/`>`, comments after a value, multi-line scalars, escapes) raises
`Unsupported`, and that document is read by PyYAML instead – so the result is always what
`yaml.safe_load` gives (tests/analyze/test_fastyaml.py compares them).
"""

from __future__ import annotations

import re
from typing import Any, Callable

BOOLS = {"yes": True, "Yes": True, "YES": True, "no": False, "No": False, "NO": False,
         "true": True, "True": True, "TRUE": True, "false": False, "False": False,
         "FALSE": False, "on": True, "On": True, "ON": True, "off": False, "Off": False,
         "OFF": False}
NULLS = frozenset({"~", "null", "Null", "NULL", ""})
# Plain scalars that are strings whatever YAML 1.1 resolves: a letter or / first, then word
# characters, dots, slashes and dashes (no number, bool, null, timestamp or float can match
# once the BOOLS/NULLS words are out).
_STRING = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*\Z")
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)\Z")
_KEY = re.compile(r"([A-Za-z0-9_./-][A-Za-z0-9_./ -]*?|\"[^\"\\]*\"|'[^']*'):(?: +|\Z)")
_NOT_SIMPLE = re.compile(r"[\[\]{}\"'#]")
_FLOW_PLAIN = re.compile(r"[^,\[\]{}:#'\"\s][^,\[\]{}#]*?(?=\s*[,\]}]|\s*:\s|\s*:\Z|\s*\Z)")


class Unsupported(Exception):
    """Something this reader leaves to PyYAML."""


def load(text: str, scalar: Callable[[str], Any]) -> Any:
    """One document's value. `scalar(text)` resolves a plain scalar the fast path cannot (PyYAML,
    through a cache the caller owns)."""
    if "\t" in text or "\r" in text or "?" in text:
        raise Unsupported("tabs, carriage returns or question marks (complex keys)")
    lines = []
    for number, raw in enumerate(text.split("\n")):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        content = raw.rstrip()
        indent = len(content) - len(content.lstrip(" "))
        lines.append([number, indent, content[indent:]])
    if not lines:
        return None
    reader = _Reader(lines, scalar)
    value, i = reader.node(0, lines[0][1])
    if i != len(lines):
        raise Unsupported("content after the document's value")
    return value


class _Reader:
    def __init__(self, lines: list, scalar: Callable[[str], Any]):
        self.lines = lines
        self.scalar = scalar

    def node(self, i: int, indent: int):
        content = self.lines[i][2]
        if content == "-" or content.startswith("- "):
            return self.sequence(i, indent)
        if _KEY.match(content):
            return self.mapping(i, indent)
        value = self.inline(content)
        if i + 1 < len(self.lines) and self.lines[i + 1][1] > indent:
            raise Unsupported("multi-line scalar")
        return value, i + 1

    def mapping(self, i: int, indent: int):
        result: dict = {}
        lines = self.lines
        while i < len(lines) and lines[i][1] == indent:
            content = lines[i][2]
            if content.startswith("- ") or content == "-":
                break
            match = _KEY.match(content)
            if match is None:
                raise Unsupported("not a mapping entry")
            key = self.key(match.group(1))
            rest = content[match.end():]
            if rest:
                value = self.inline(rest)
                i += 1
                if i < len(lines) and lines[i][1] > indent:
                    raise Unsupported("multi-line scalar")
            elif i + 1 < len(lines) and (
                    lines[i + 1][1] > indent
                    or (lines[i + 1][1] == indent and (lines[i + 1][2].startswith("- ")
                                                       or lines[i + 1][2] == "-"))):
                value, i = self.node(i + 1, lines[i + 1][1])
            else:
                value, i = None, i + 1
            if key in result or not isinstance(key, (str, int, bool, float, type(None))):
                raise Unsupported("duplicate or complex key")
            result[key] = value
        if i < len(lines) and lines[i][1] > indent:
            raise Unsupported("bad indentation")
        return result, i

    def sequence(self, i: int, indent: int):
        result: list = []
        lines = self.lines
        while i < len(lines) and lines[i][1] == indent and lines[i][2].startswith("- "):
            content = lines[i][2]
            item = content[2:]
            inner = item.lstrip(" ")
            if not inner:
                raise Unsupported("empty item")
            if inner.startswith("- ") or _KEY.match(inner):
                # `- key: value` / `- - x`: the item is a block node indented past the dash
                lines[i] = [lines[i][0], indent + 2 + len(item) - len(inner), inner]
                value, i = self.node(i, lines[i][1])
            else:
                value = self.inline(inner)
                i += 1
                if i < len(lines) and lines[i][1] > indent:
                    raise Unsupported("multi-line scalar")
            result.append(value)
        if i < len(lines) and lines[i][1] == indent and lines[i][2] == "-":
            raise Unsupported("empty item")
        return result, i

    def key(self, text: str):
        if text[0] in "\"'":
            return self.quoted(text)
        return self.plain(text.rstrip())

    def inline(self, text: str):
        if " #" in text or text[0] in "#&*!|>%@`?":
            raise Unsupported("comment, anchor, tag or block scalar")
        if text[0] in "{[":
            simple = self.simple_flow(text)
            if simple is not None:
                return simple
            value, end = self.flow(text, 0)
            if text[end:].strip():
                raise Unsupported("text after a flow collection")
            return value
        if text[0] in "\"'":
            return self.quoted(text)
        if ": " in text or text.endswith(":"):
            raise Unsupported("a mapping on one line")
        return self.plain(text)

    def quoted(self, text: str) -> str:
        quote = text[0]
        if len(text) < 2 or text[-1] != quote:
            raise Unsupported("quoted scalar not ending on its line")
        body = text[1:-1]
        if quote == '"':
            if "\\" in body or '"' in body:
                raise Unsupported("escapes")
            return body
        if "'" in body.replace("''", ""):
            raise Unsupported("quote inside a quoted scalar")
        return body.replace("''", "'")

    def plain(self, text: str):
        if text in BOOLS:
            return BOOLS[text]
        if text in NULLS:
            return None
        if _STRING.match(text):
            return text
        if _DECIMAL.match(text):
            return int(text)
        if text[0] in "&*!|>%@`?[]{},#:" or text == "-" or text.startswith("- "):
            raise Unsupported("an indicator starts the scalar")
        value = self.scalar(text)
        if isinstance(value, (list, dict)):
            raise Unsupported("not a scalar")
        return value

    def simple_flow(self, text: str):
        """`{a: b, c: d}` / `[a, b]` without nesting, quotes or comments, split directly (most
        flow collections in manifests); None for anything else."""
        closing = "}" if text[0] == "{" else "]"
        inner = text[1:-1]
        if text[-1] != closing or _NOT_SIMPLE.search(inner):
            return None
        if not inner.strip():
            return {} if closing == "}" else []
        parts = inner.split(",")
        if closing == "]":
            values = [part.strip() for part in parts]
            if "" in values or any(":" in v for v in values):
                return None
            return [self.plain(v) for v in values]
        result = {}
        for part in parts:
            key, sep, value = part.partition(": ")
            key, value = key.strip(), value.strip()
            if not sep or not key or ":" in key or ": " in value or value.endswith(":") \
                    or key in result:
                return None
            result[self.plain(key)] = self.plain(value) if value else None
        return result

    def flow(self, text: str, pos: int):
        """A `{...}`/`[...]` starting at `pos`; (value, position after it)."""
        closing = "}" if text[pos] == "{" else "]"
        mapping = closing == "}"
        result: Any = {} if mapping else []
        pos += 1
        while True:
            pos = _skip(text, pos)
            if pos >= len(text):
                raise Unsupported("flow collection not closed on its line")
            if text[pos] == closing:
                return result, pos + 1
            item, pos = self.flow_item(text, pos)
            pos = _skip(text, pos)
            if mapping:
                if pos >= len(text) or text[pos] != ":":
                    raise Unsupported("flow mapping entry without a value")
                pos = _skip(text, pos + 1)
                if text[pos:pos + 1] in (",", "}"):
                    value = None
                else:
                    value, pos = self.flow_item(text, pos)
                    pos = _skip(text, pos)
                if isinstance(item, (dict, list)) or item in result:
                    raise Unsupported("duplicate or complex key")
                result[item] = value
            else:
                if pos < len(text) and text[pos] == ":":
                    raise Unsupported("a pair in a flow sequence")
                result.append(item)
            if pos < len(text) and text[pos] == ",":
                pos += 1
            elif pos >= len(text) or text[pos] != closing:
                raise Unsupported("flow collection syntax")

    def flow_item(self, text: str, pos: int):
        if pos >= len(text):
            raise Unsupported("flow collection not closed on its line")
        char = text[pos]
        if char in "{[":
            return self.flow(text, pos)
        if char in "\"'":
            end = text.find(char, pos + 1)
            while char == "'" and end != -1 and text[end + 1:end + 2] == "'":
                end = text.find(char, end + 2)
            if end == -1:
                raise Unsupported("quoted scalar not closed")
            return self.quoted(text[pos:end + 1]), end + 1
        match = _FLOW_PLAIN.match(text, pos)
        if match is None:
            raise Unsupported("flow scalar")
        plain = match.group(0).rstrip()
        if plain.endswith(":"):
            raise Unsupported("a colon ending a flow scalar")
        return self.plain(plain), match.end()


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] == " ":
        pos += 1
    return pos
