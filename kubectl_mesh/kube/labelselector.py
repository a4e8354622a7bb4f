"""Checking a label selector (`-l`) before it is sent: the grammar, keys and values of
k8s.io/apimachinery `pkg/labels/selector.go` (`Parse`: `Lexer.Lex`, `Parser.parse`,
`NewRequirement`), so a malformed selector is a usage error naming the flag, not an answer
from the API server.

    selector    ::= requirement ("," requirement)*
    requirement ::= ["!"] KEY [("in" | "notin") "(" VALUE ("," VALUE)* ")"
                               | ("=" | "==" | "!=" | ">" | "<") VALUE]
"""

from __future__ import annotations

import re

from kubectl_mesh.kube.names import label_key_problem, label_value_problem

_SPECIAL = "=!(),<>"
_WHITESPACE = " \t\r\n"
_SYMBOLS = {"(", ")", ",", "!", "=", "==", "!=", ">", "<"}
_KEYWORDS = {"in", "notin"}
IDENT, END = "identifier", "end of string"
_INTEGER = re.compile(r"[+-]?[0-9]+")


class SelectorSyntaxError(ValueError):
    """What is wrong with a selector, in apimachinery's words."""


def check_selector(selector: str) -> None:
    """Raise SelectorSyntaxError when `selector` is not a valid label selector."""
    _Parser(_tokens(selector)).parse()


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, literal) pairs; kind is a symbol, a keyword, IDENT or END (Lexer.Lex)."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i == n:
            out.append((END, ""))
            return out
        if text[i] in _SPECIAL:
            # The longest run of special characters that is a symbol, as scanSpecialSymbol.
            j, best = i, None
            while j < n and text[j] in _SPECIAL:
                j += 1
                if text[i:j] in _SYMBOLS:
                    best = j
                elif best is not None:
                    break
            if best is None:
                raise SelectorSyntaxError(f"found {text[i:j]!r}, expected an operator")
            out.append((text[i:best], text[i:best]))
            i = best
        else:
            j = i
            while j < n and text[j] not in _SPECIAL and text[j] not in _WHITESPACE:
                j += 1
            word = text[i:j]
            out.append((word if word in _KEYWORDS else IDENT, word))
            i = j


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens, self.pos = tokens, 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        kind, lit = self.tokens[self.pos]
        return (IDENT if values and kind in _KEYWORDS else kind), lit

    def take(self, values: bool = True) -> tuple[str, str]:
        token = self.peek(values)
        self.pos += 1
        return token

    def parse(self) -> None:
        while True:
            kind, lit = self.peek()
            if kind == END:
                return
            if kind not in (IDENT, "!"):
                raise SelectorSyntaxError(f"found {lit!r}, expected '!', a label key or the end")
            self.requirement()
            kind, lit = self.take()
            if kind == END:
                return
            if kind != ",":
                raise SelectorSyntaxError(f"found {lit!r}, expected ',' or the end")
            if self.peek()[0] not in (IDENT, "!"):
                raise SelectorSyntaxError(f"found {self.peek()[1]!r}, expected a label key "
                                          "after ','")

    def requirement(self) -> None:
        negated = self.peek()[0] == "!"
        if negated:
            self.take()
        kind, key = self.take()
        if kind != IDENT:
            raise SelectorSyntaxError(f"found {key!r}, expected a label key")
        problem = label_key_problem(key)
        if problem:
            raise SelectorSyntaxError(f"label key {key!r} {problem}")
        if self.peek()[0] in (END, ","):
            return  # KEY (exists) or !KEY (does not exist)
        if negated:
            raise SelectorSyntaxError(f"found {self.peek()[1]!r} after !{key}, expected ',' or "
                                      "the end")
        op, lit = self.take(values=False)
        if op in ("in", "notin"):
            values = self.value_set()
        elif op in ("=", "==", "!=", ">", "<"):
            kind, value = self.peek()
            if kind in (END, ","):
                values = [""]
            elif kind == IDENT:
                self.take()
                values = [value]
            else:
                raise SelectorSyntaxError(f"found {value!r}, expected a value after {key}{op}")
            if op in (">", "<") and not _is_int(values[0]):
                raise SelectorSyntaxError(f"the value of {key}{op} must be an integer")
        else:
            raise SelectorSyntaxError(f"found {lit!r} after {key}, expected one of in, notin, "
                                      "=, ==, !=, >, <")
        for value in values:
            problem = label_value_problem(value)
            if problem:
                raise SelectorSyntaxError(f"the value {value!r} of {key} {problem}")

    def value_set(self) -> list[str]:
        kind, lit = self.take()
        if kind != "(":
            raise SelectorSyntaxError(f"found {lit!r}, expected '('")
        values: list[str] = []
        expect_value = True
        while True:
            kind, lit = self.take()
            if kind == ")":
                return values or [""]
            if kind == ",":
                if expect_value:
                    values.append("")
                expect_value = True
            elif kind == IDENT and expect_value:
                values.append(lit)
                expect_value = False
            else:
                raise SelectorSyntaxError(f"found {lit or 'the end'!r}, expected ',', ')' or a "
                                          "value")


def _is_int(text: str) -> bool:
    """What Go's strconv.ParseInt(text, 10, 64) accepts (no '_', no spaces)."""
    return bool(_INTEGER.fullmatch(text))
