"""Dumps of the wrong shape: where in the document, and one BadInputError naming the file.

The models read a dump with `dict.get` and trust the types protojson writes. A hand-edited or
corrupted file breaks that trust somewhere (a name that is a number, a list where an object
belongs); the models raise `Malformed` with the JSON path of the element they were reading,
`ConfigDump` prefixes where the section sits in the document, and `reading()` – around
everything a command does with one dump – turns it, and any other shape error that escaped
the models, into a `BadInputError` (exit 6) naming the source.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

from kubectl_mesh.errors import BadInputError

# What reading a wrongly shaped document raises in Python: `.get` on a list (AttributeError),
# `in`/`+`/`<` across types (TypeError), int("x") (ValueError), a missing key (KeyError),
# an empty list (IndexError), nesting deeper than the interpreter's stack (RecursionError).
SHAPE_ERRORS = (AttributeError, TypeError, ValueError, KeyError, IndexError, RecursionError)


class Malformed(Exception):
    """An element of a dump is not shaped as its Envoy message: `path` (a JSON path relative
    to what the raiser was reading) and `reason`."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason

    def within(self, prefix: str) -> "Malformed":
        """The same error, its path prefixed by where its container sits (`a[1]` + `b` →
        `a[1].b`, `a` + `[2]` → `a[2]`)."""
        if not self.path:
            path = prefix
        elif not prefix:
            path = self.path
        else:
            path = prefix + ("" if self.path.startswith("[") else ".") + self.path
        return Malformed(path, self.reason)

    @classmethod
    def of(cls, path: str, error: BaseException) -> "Malformed":
        """A Malformed for a Python error raised while reading the element at `path`."""
        if isinstance(error, Malformed):
            return error.within(path)
        return cls(path, describe(error))


def kind(value: Any) -> str:
    """The JSON name of a value's type: object, array, string, number, boolean, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def describe(error: BaseException) -> str:
    """A shape error as the user's problem, not Python's: `'int' object has no attribute
    'get'` → `a number where an object belongs`."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, AttributeError) and getattr(error, "obj", None) is not None:
        wanted = next((name for cls, name in ((dict, "an object"), (str, "a string"),
                                              (list, "an array"))
                       if hasattr(cls, error.name or "")), "another type")
        return f"{article(kind(error.obj))} where {wanted} belongs"
    if isinstance(error, KeyError):
        return f"missing field {error.args[0]!r}" if error.args else "a missing field"
    text = str(error).replace("'int'", "number").replace("'str'", "string") \
        .replace("'list'", "array").replace("'dict'", "object").replace("'NoneType'", "null") \
        .replace("'float'", "number").replace("'bool'", "boolean")
    return f"wrong type ({text})" if isinstance(error, TypeError) else f"bad value ({text})"


def article(name: str) -> str:
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def text(obj: dict, key: str, default: str = "") -> str:
    """`obj[key]` when it is a string (`default` when absent or null); Malformed otherwise."""
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        return value
    raise Malformed(key, f"{article(kind(value))} where a string belongs")


def texts(obj: dict, key: str) -> tuple[str, ...]:
    """`obj[key]` as a tuple of strings (a missing or null list is empty); Malformed otherwise."""
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise Malformed(key, f"{article(kind(value))} where an array of strings belongs")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise Malformed(f"{key}[{i}]", f"{article(kind(item))} where a string belongs")
    return tuple(value)


def objects(obj: dict, key: str) -> list:
    """`obj[key]` as a list of objects (a missing or null list is empty); Malformed otherwise."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(key, f"{article(kind(value))} where an array belongs")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise Malformed(f"{key}[{i}]", f"{article(kind(item))} where an object belongs")
    return value


def relative(field: str, index: int) -> str:
    """The default `at` of the parsers: a path relative to the section."""
    return f"{field}[{index}]"


def elements(obj: dict, field: str, at: Callable[[str, int], str] = relative
             ) -> Iterator[tuple[str, dict]]:
    """(JSON path, element) for each object in the list `obj[field]` (none when absent or
    null); Malformed when it is not a list of objects."""
    items = obj.get(field)
    if items is None:
        return
    if not isinstance(items, list):
        raise Malformed(at(field, 0).rsplit("[", 1)[0],
                        f"{article(kind(items))} where an array belongs")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise Malformed(at(field, i), f"{article(kind(item))} where an object belongs")
        yield at(field, i), item


@contextlib.contextmanager
def reading(source: str, expected: str = "an Envoy config dump") -> Iterator[None]:
    """Turn a shape error raised while a document from `source` is modelled, walked or
    written into one BadInputError line naming `source` (and the JSON path when it is
    known) and what was `expected`."""
    try:
        yield
    except Malformed as e:
        raise BadInputError(f"{source}: {e.path or 'the document'}: {e.reason}; expected "
                            f"{expected}") from e
    except SHAPE_ERRORS as e:
        raise BadInputError(f"{source} is not shaped like {expected} ({describe(e)})",
                            hint="run with --debug to see where") from e
