"""How an admin answer reaches stdout, piece by piece as it arrives (a 13 MB config dump is
never whole in memory): raw bytes into a pipe or file; on a terminal, JSON re-indented by
`JsonIndenter` and text with its control characters escaped (`output.printable`)."""

from __future__ import annotations

import codecs
import re
from typing import IO, Iterable

# One JSON token at a position: a whole string, a punctuation mark, whitespace, or a literal
# (number, true, false, null). A string or literal cut by the end of a chunk waits for more.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|\s+|[^\s{}\[\],:"]+')
_OPEN, _CLOSE = "{[", "}]"


class JsonIndenter:
    """Re-indents a JSON text fed in pieces, as `json.dumps(value, indent=2)` lays it out,
    without parsing it: numbers and strings stay byte for byte (hashes above 2^53 included),
    memory stays one token."""

    def __init__(self, indent: int = 2):
        self._unit = " " * indent
        self._depth = 0
        self._pending = ""  # text not tokenized yet (a cut string or literal)
        self._opened = False  # the last token opened a container: `{}` stays on one line
        self._values = 0  # top-level values seen, for a newline between them

    def feed(self, text: str) -> str:
        """The indented text for `text`; what a later piece may complete is held back."""
        buf = self._pending + text
        out: list[str] = []
        pos, end = 0, len(buf)
        while pos < end:
            m = _TOKEN.match(buf, pos)
            if m is None or (m.end() == end and buf[pos] != "\"" and not buf[pos].isspace()
                             and buf[pos] not in "{}[],:"):
                break  # an unterminated string, or a literal that may go on
            pos = m.end()
            self._token(m.group(), out)
        self._pending = buf[pos:]
        return "".join(out)

    def end(self) -> str:
        """The rest, and the final newline."""
        out: list[str] = []
        if self._pending.strip():
            self._token(self._pending.strip(), out)
        self._pending = ""
        if self._opened:
            self._opened = False
        return "".join(out) + "\n"

    def _token(self, token: str, out: list[str]) -> None:
        first = token[0]
        if first.isspace():
            return
        if self._opened:
            self._opened = False
            if first in _CLOSE:
                out.append(token)
                return
            self._depth += 1
            out.append("\n" + self._unit * self._depth)
        if first in _OPEN:
            self._top_level_gap(out)
            out.append(token)
            self._opened = True
        elif first in _CLOSE:
            self._depth = max(0, self._depth - 1)
            out.append("\n" + self._unit * self._depth + token)
        elif first == ",":
            out.append(",\n" + self._unit * self._depth)
        elif first == ":":
            out.append(": ")
        else:
            self._top_level_gap(out)
            out.append(token)

    def _top_level_gap(self, out: list[str]) -> None:
        if self._depth == 0:
            if self._values:
                out.append("\n")
            self._values += 1


def write_raw(chunks: Iterable[bytes], stdout: IO[str]) -> int:
    """The bytes as they are (to stdout's binary buffer when it has one); their count."""
    stdout.flush()
    binary = getattr(stdout, "buffer", None)
    size = 0
    decoder = None if binary is not None else codecs.getincrementaldecoder("utf-8")("replace")
    for chunk in chunks:
        size += len(chunk)
        if binary is not None:
            binary.write(chunk)
        else:
            stdout.write(decoder.decode(chunk))
    if binary is not None:
        binary.flush()
    else:
        stdout.write(decoder.decode(b"", final=True))
    return size


def write_for_terminal(chunks: Iterable[bytes], stdout: IO[str], json: bool) -> int:
    """JSON re-indented, or text with control characters (but newlines and tabs) escaped;
    the byte count of the answer."""
    from kubectl_mesh.output import printable

    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    indenter = JsonIndenter() if json else None
    size = 0
    last = "\n"
    for chunk in chunks:
        size += len(chunk)
        text = decoder.decode(chunk)
        if indenter is not None:
            text = indenter.feed(text)
        else:
            text = "\n".join("\t".join(printable(part) for part in line.split("\t"))
                             for line in text.split("\n"))
        if text:
            stdout.write(text)
            last = text[-1]
            stdout.flush()
    rest = decoder.decode(b"", final=True)
    if indenter is not None:
        stdout.write(indenter.feed(rest) + indenter.end())
    elif rest or last != "\n":
        stdout.write(printable(rest) + "\n")  # a terminal's prompt starts on its own line
    stdout.flush()
    return size
