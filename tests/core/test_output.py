"""The -o dispatcher and the colour helper."""

from __future__ import annotations

import io
import json

import pytest
import yaml

from kubectl_mesh import output
from kubectl_mesh.errors import UsageError


def test_table_is_tabwriter_aligned_with_gap_and_no_trailing_space():
    out = io.StringIO()
    output.write(out, "short", headers=("NAME", "PORT", "X"), rows=[("a", "80", ""),
                                                                    ("long-name", "8080", "y")])
    assert out.getvalue() == ("NAME          PORT     X\n"
                              "a             80\n"
                              "long-name     8080     y\n")


def test_numbers_are_not_reformatted_and_gap_one():
    out = io.StringIO()
    output.write(out, "wide", headers=("A", "B"), rows=[("007", "1e3")], gap=1)
    assert out.getvalue() == "A   B\n007 1e3\n"


def test_json_keeps_big_integers_exact():
    out = io.StringIO()
    big = 2**64 - 1
    output.write(out, "json", data={"value": big})
    assert json.loads(out.getvalue())["value"] == big and str(big) in out.getvalue()


def test_yaml_keeps_key_order():
    out = io.StringIO()
    output.write(out, "yaml", data=[{"name": "b", "address": "a"}])
    assert out.getvalue() == "- name: b\n  address: a\n"
    assert yaml.safe_load(out.getvalue()) == [{"name": "b", "address": "a"}]


def test_unknown_format_lists_allowed():
    with pytest.raises(UsageError, match=r"unknown output format 'table'; allowed: short, wide, "
                                         r"json, yaml"):
        output.write(io.StringIO(), "table", headers=("A",), rows=[])


class _Pipe(io.StringIO):
    def write(self, s):
        raise BrokenPipeError


def test_broken_pipe_propagates():
    with pytest.raises(BrokenPipeError):
        output.write(_Pipe(), "short", headers=("A",), rows=[("x",)])


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("stream,env,expected", [
    (_Tty(), {}, True), (_Tty(), {"NO_COLOR": "1"}, False), (io.StringIO(), {}, False),
], ids=["tty", "no-color", "pipe"])
def test_use_colour(stream, env, expected):
    assert output.use_colour(stream, env) is expected
    assert output.colour("x", "red", expected) == ("\033[31mx\033[0m" if expected else "x")


@pytest.mark.parametrize("size", [3, 1500], ids=["small", "large"])
@pytest.mark.parametrize("gap", [1, 5], ids=["gap1", "gap5"])
def test_ascii_tables_render_exactly_like_tabulate(gap, size):
    """The direct padding used for every plain-ASCII table must be byte-identical to
    tabulate's layout, spaces around cells included (tabulate strips them)."""
    import random
    rnd = random.Random(gap)
    alphabet = "abcdefghij.-|/*:0123456789 "
    headers = ("NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE")
    rows = [tuple("".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30)))
                  for _ in headers) for _ in range(size)]
    rows[1] = ("", "x", None, "", "")  # empty and None cells, trailing empties
    rows[2] = ("  lead", "trail  ", " ", "a b", "7")
    cells = [list(headers)] + [["" if c is None else c for c in r] for r in rows]
    assert output._plain_ascii(cells)
    assert output.render_table(headers, rows, gap) == output._tabulated(cells, gap)


def test_tables_with_wide_characters_still_use_tabulate():
    rows = [("名前", "x"), ("abc", "y")]
    text = output.render_table(("A", "B"), rows)
    # tabulate measures 名前 as 4 columns wide (wcwidth) where len() says 2
    assert text.splitlines()[1].startswith("名前") and len(text.splitlines()) == len(rows) + 1


JSON_CASES = {
    "empty-list": [], "empty-dict": {}, "nested-empty": [[], {}, [[]], {"a": {}}],
    "scalars": [1, -2.5, True, False, None, 2**70, 1e100, -0.0],
    "specials": [float("nan"), float("inf"), float("-inf")],
    "strings": ["é中", "\x1b[2J", 'quote " and \\ and \n', "\u2028"],
    "keys": {1: "int", None: "none", True: "bool", 2.5: "float", "s": "str"},
    "tuple": {"t": (1, (2, 3))},
}


@pytest.mark.parametrize("data", JSON_CASES.values(), ids=JSON_CASES.keys())
def test_json_is_what_json_dump_writes(data):
    out = io.StringIO()
    output.write(out, "json", data=data)
    assert out.getvalue() == json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def test_json_of_every_real_dump_is_what_json_dump_writes():
    from pathlib import Path
    for path in sorted(Path("/work/shared/istio-dumps").glob("*.json")):
        data = json.loads(path.read_text())
        out = io.StringIO()
        output.write(out, "json", data=data)
        assert out.getvalue() == json.dumps(data, indent=2, ensure_ascii=False) + "\n", path


def test_json_refuses_what_json_cannot_encode():
    import datetime
    with pytest.raises(TypeError):
        output.write(io.StringIO(), "json", data=[{"t": datetime.date(2026, 1, 1)}])
    with pytest.raises(TypeError):
        output.write(io.StringIO(), "json", data={(1, 2): "tuple key"})
