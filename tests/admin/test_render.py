"""The terminal rendering of admin answers: JSON re-indented piece by piece exactly as
`json.dumps(indent=2)` would, text with control characters escaped; raw bytes otherwise."""

from __future__ import annotations

import io
import json
import random

import pytest

from kubectl_mesh.adminapi.render import JsonIndenter, write_for_terminal, write_raw

DOCS = [
    {"a": [1, 2, {"b": {}}], "c": [], "d": "x\"y,{}[]: \\", "e": 12345678901234567890123,
     "f": True, "g": None, "h": -1.5e10, "i": "ü → 🙂"},
    [], {}, [[]], "s", 12, {"nested": [[{"x": [{}]}]]},
]


@pytest.mark.parametrize("doc", DOCS, ids=[f"doc{i}" for i in range(len(DOCS))])
def test_indenter_matches_json_dumps_for_any_cut(doc):
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    rng = random.Random(7)
    for _ in range(40):
        indenter, out, i = JsonIndenter(), [], 0
        while i < len(text):
            n = rng.randint(1, 6)
            out.append(indenter.feed(text[i:i + n]))
            i += n
        out.append(indenter.end())
        assert "".join(out) == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def test_big_integers_and_number_text_stay_as_sent():
    out = JsonIndenter().feed('{"v": 18446744073709551615, "f": 1.50}') + JsonIndenter().end()
    assert "18446744073709551615" in out and "1.50" in out


def test_envoy_one_space_indent_becomes_two():
    envoy = b'{\n "state": "LIVE",\n "command_line_options": {\n  "concurrency": 1\n }\n}\n'
    out = io.StringIO()
    write_for_terminal([envoy[:9], envoy[9:30], envoy[30:]], out, json=True)
    assert out.getvalue() == ('{\n  "state": "LIVE",\n  "command_line_options": {\n'
                              '    "concurrency": 1\n  }\n}\n')


def test_text_for_a_terminal_escapes_control_characters_but_keeps_lines_and_tabs():
    out = io.StringIO()
    write_for_terminal([b"outbound|80||evil\x1b[2J::a\tb\n", b"x\xc3", b"\xa9"], out, json=False)
    assert out.getvalue() == "outbound|80||evil\\x1b[2J::a\tb\nx\u00e9\n"


def test_raw_is_byte_for_byte_into_the_binary_buffer():
    body = [b'{\n "a": "\x1b"\n}', b"\n\xff"]
    buffer = io.BytesIO()
    stdout = io.TextIOWrapper(buffer, encoding="utf-8")
    assert write_raw(body, stdout) == sum(map(len, body))
    assert buffer.getvalue() == b"".join(body)
