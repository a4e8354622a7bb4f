"""The fast manifest reader gives exactly what yaml.safe_load gives, and leaves to PyYAML what
it does not read itself."""

from __future__ import annotations

import pathlib
import sys

import pytest
import yaml

from kubectl_mesh.analyze import fastyaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def scalar(text: str):
    return yaml.safe_load(text)


def documents() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from benchmarks.analyze_scale import generate

    texts = [p.read_text() for p in sorted((ROOT / "sandbox" / "scenarios").glob("*.yaml"))]
    texts.append(generate(120))
    out = []
    for text in texts:
        out.extend(d for d in text.split("\n---\n") if d.strip())
    return out


SIMPLE = {
    "flow-and-block": "a: {b: [1, '2', \"x\"], c: {}}\nd:\n- e: 1\n  f: [x, y]\n- - nested\n",
    "types": "i: 10\nz: 0\no: 010\nx: 0x1f\nf: 1.5\nb: yes\nn: ~\ne:\ns: 1.28.0\nt: 2026-01-01\n"
             "neg: -3\nurl: http://a:8080/x\nq: 'it''s'\n",
    "compact-seq": "hosts:\n- a\n- b\nnext: {k: v}\n",
    "keys": "\"quoted\": 1\n80: http\nsidecar.istio.io/inject: 'false'\nwith space: x\n",
    "flow-values": "m: {url: http://x/y, e: , n: null, t: true, list: [a, {b: c}]}\n",
    "simple-flows": "a: {k: v, n: 1, e: , s: a b}\nb: [1, x, -2, 1.5]\nc: {}\nd: []\n",
    "indented-items": "spec:\n  ports:\n    - name: http\n      port: 80\n    -   name: x\n        port: 1\n",
}

FALLBACK = {
    "comment-after-value": "a: 1  # one\n",
    "block-scalar": "a: |\n  text\n",
    "anchor": "a: &x 1\nb: *x\n",
    "multi-line-plain": "a: one\n  two\n",
    "escape": 'a: "tab\\t"\n',
    "tag": "a: !!str 1\n",
    "mapping-on-one-line": "a: b: c\n",
    "duplicate-key": "a: 1\na: 2\n",
    "indicator-in-flow": "a: {b: |}\n",
    "alias-in-flow": "a: [*x]\n",
}


@pytest.mark.parametrize("text", list(SIMPLE.values()), ids=list(SIMPLE))
def test_simple_yaml_reads_as_pyyaml_does(text):
    assert fastyaml.load(text, scalar) == yaml.safe_load(text)


@pytest.mark.parametrize("text", list(FALLBACK.values()), ids=list(FALLBACK))
def test_what_it_does_not_read_is_left_to_pyyaml(text):
    with pytest.raises(fastyaml.Unsupported):
        fastyaml.load(text, scalar)


def test_every_scenario_and_generated_document_reads_as_pyyaml_does():
    docs = documents()
    fast = 0
    for doc in docs:
        try:
            value = fastyaml.load(doc, scalar)
        except fastyaml.Unsupported:
            continue
        fast += 1
        assert value == yaml.safe_load(doc), doc
    assert fast >= 0.9 * len(docs)  # the fast path is what reads them, not the fallback


def test_mutated_documents_read_as_pyyaml_reads_them_or_are_left_to_it():
    """Random edits (characters YAML treats specially inserted, deleted, doubled) of real
    documents: whatever the fast reader accepts, PyYAML reads to the same value – it never
    accepts what PyYAML rejects, and never fails with anything but Unsupported."""
    import random

    rnd = random.Random(20261206)
    docs = documents()
    chars = list(" :-{}[],'\"#\n\tax1&*|>!?%@.")
    accepted = 0
    for _ in range(4000):
        doc = rnd.choice(docs)
        for _ in range(rnd.randint(1, 3)):
            i, op = rnd.randrange(len(doc) + 1), rnd.random()
            if op < 0.4:
                doc = doc[:i] + rnd.choice(chars) + doc[i:]
            elif op < 0.8:
                doc = doc[:i] + doc[i + 1:]
            else:
                doc = doc[:i] + doc[i:i + 1] * 2 + doc[i + 1:]
        try:
            value = fastyaml.load(doc, strict_scalar)
        except fastyaml.Unsupported:
            continue
        accepted += 1
        assert value == yaml.safe_load(doc), doc  # raises if PyYAML rejects it
    assert accepted > 1000


def strict_scalar(text: str):
    """What files.parse passes: PyYAML's value, Unsupported where PyYAML fails."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise fastyaml.Unsupported("scalar") from None
