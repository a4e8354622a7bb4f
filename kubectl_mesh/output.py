"""The one `-o` dispatcher every command uses: short/wide tables, json, yaml; and colour."""

from __future__ import annotations

import json
import json.encoder
import os
import re
from typing import IO, Any, Mapping, Sequence

from kubectl_mesh.errors import UsageError

FORMATS = ("short", "wide", "json", "yaml")


def check_format(fmt: str) -> str:
    """Validate an `-o` value early (before any fetch); UsageError lists the allowed ones."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {fmt!r}; allowed: {', '.join(FORMATS)}")
    return fmt


def write(out: IO[str], fmt: str, *, headers: Sequence[str] = (),
          rows: Sequence[Sequence[Any]] = (), data: Any = None, gap: int = 5) -> None:
    """Render to `out`: `short`/`wide` as an aligned table (the caller chose the columns),
    `json`/`yaml` as `data`. BrokenPipeError propagates to the top-level handler."""
    check_format(fmt)
    if fmt == "json":
        write_json(out, data)
    elif fmt == "yaml":
        out.write(to_yaml(data))
    else:
        out.write(render_table(headers, rows, gap))


def write_text(out: IO[str], text: str) -> None:
    """A text answer written as it came (Envoy's `/stats`, Prometheus text), each line with
    its control characters escaped (`printable`), ending in a newline when not empty."""
    lines = text.splitlines()
    if lines:
        out.write("\n".join(printable(line) for line in lines) + "\n")


# What a terminal would act on instead of showing: C0 controls (ESC starts a sequence that
# can clear or retitle the screen, a newline forges a row), DEL, C1 controls, the Unicode
# line/paragraph separators and the bidirectional overrides that reorder what is shown.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                      "\u202a-\u202e\u2066-\u2069]")
_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def printable(text: str) -> str:
    """`text` with every control character written as its escape (`\\x1b`, `\\n`, `\\u202e`,
    as `repr` shows them), so names from dumps, logs or the cluster cannot drive the terminal
    or forge lines; the user still sees that something was there. Backslashes stay as they are
    (route regexes are full of them)."""
    if text.isprintable():  # the common case, one pass in C; spaces are printable
        return text
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match) -> str:
    char = match.group()
    return _ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100
                                  else f"\\u{ord(char):04x}")


def write_json(out: IO[str], data: Any) -> None:
    """`data` as `json.dump(data, out, indent=2, ensure_ascii=False)` writes it, plus a
    newline – byte for byte – but ~5x faster: with an indent, the json module encodes in
    pure Python, one generator per container and one `write` per token (77 s for a 194 MB
    routes dump). Here each container is one `join`, strings go through json's C escaper,
    and a top-level list is written item by item."""
    if isinstance(data, list) and data:
        out.write("[\n  ")
        for i, item in enumerate(data):
            if i:
                out.write(",\n  ")
            out.write(json_value(item, "\n  "))
        out.write("\n]\n")
    else:
        out.write(json_value(data, "\n") + "\n")


def json_value(value: Any, newline: str = "\n") -> str:
    """One JSON value indented by two spaces per level, as json.dumps(indent=2) writes it;
    `newline` is "\n" plus the current indentation ("\n  " for an item of a top-level list,
    to write one item at a time). TypeError for what json cannot encode, as json raises."""
    kind = type(value)
    if kind is str:
        return _encode_string(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = newline + "  "
        return "{" + inner + ("," + inner).join(
            [(_encode_string(k) if type(k) is str else _json_key(k)) + ": "
             + json_value(v, inner) for k, v in value.items()]) + newline + "}"
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        inner = newline + "  "
        return "[" + inner + ("," + inner).join([json_value(v, inner) for v in value]) \
            + newline + "]"
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, (dict, list, tuple)):
        return json_value(dict(value) if isinstance(value, dict) else list(value), newline)
    return _json_scalar(value)


def _json_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return _encode_string(key)
    if key is None or isinstance(key, (bool, int, float)):
        return _encode_string(_json_scalar(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


# json's string escaper (its C version where _json is built), as json.dump(ensure_ascii=False)
_encode_string = json.encoder.encode_basestring


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], gap: int = 5) -> str:
    """Columns left-aligned and separated by at least `gap` spaces, like Go's tabwriter with
    that padding (istioctl: 5, listeners 1). Trailing spaces are stripped; '' if no headers.
    Control characters in cells are escaped (`printable`)."""
    if not headers:
        return ""
    cells = [list(headers)] + [["" if c is None else printable(str(c)) for c in r] for r in rows]
    if _plain_ascii(cells):
        return _pad_columns(cells, gap)
    return _tabulated(cells, gap)


def _tabulated(cells: list[list[str]], gap: int) -> str:
    """tabulate's layout, for cells whose visible width is not len() (wide characters, escape
    codes, several lines); the import (~40 ms with importlib.metadata) is paid only here."""
    from tabulate import DataRow, TableFormat, tabulate

    sep = " " * gap
    fmt = TableFormat(lineabove=None, linebelowheader=None, linebetweenrows=None,
                      linebelow=None, headerrow=DataRow("", sep, ""),
                      datarow=DataRow("", sep, ""), padding=0, with_header_hide=None)
    # The header goes in as a data row: tabulate pads real headers by 2 extra spaces
    # (MIN_PADDING), which tabwriter does not.
    text = tabulate(cells, tablefmt=fmt, disable_numparse=True, stralign="left")
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def _plain_ascii(cells: list[list[str]]) -> bool:
    """No wide characters, escape codes or line breaks, so len() is the visible width (one
    pass in C over the cells joined by a space, which is itself printable ASCII)."""
    text = " ".join([" ".join(row) for row in cells])
    return text.isascii() and text.isprintable()


def _pad_columns(cells: list[list[str]], gap: int) -> str:
    """Plain-ASCII cells padded directly, byte-identical to `_tabulated` (which strips each
    cell's surrounding spaces, as tabulate does without PRESERVE_WHITESPACE): no import, and
    none of tabulate's per-cell width and type checks (~70 ms for 5000 rows)."""
    cells = [[c.strip() for c in row] for row in cells]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    sep = " " * gap
    return "".join(sep.join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n"
                   for row in cells)


def to_yaml(data: Any) -> str:
    """YAML in document order (not sorted), block style, using libyaml when present."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True)


def use_colour(stream: IO, environ: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, never when NO_COLOR is set (https://no-color.org)."""
    environ = os.environ if environ is None else environ
    if environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


_CODES = {"red": "31", "green": "32", "yellow": "33", "bold": "1", "dim": "2"}


def colour(text: str, name: str, enabled: bool) -> str:
    """Wrap `text` in an ANSI colour (`red`, `green`, `yellow`, `bold`, `dim`) when enabled."""
    if not enabled or name not in _CODES:
        return text
    return f"\033[{_CODES[name]}m{text}\033[0m"
