"""Fuzzing every `--file` command with mutated real inputs: whatever the file holds, the
command ends with a documented exit code and at most one `error:` line on stderr – never a
traceback, never "unexpected", never a raw control character on the terminal.

Inputs are the real dumps under /work/shared/istio-dumps (JSON and YAML), the sync payloads
and the access logs of the tests; mutations are structure-aware (a value of another type, a
deleted key, control characters in a string, deep nesting, YAML aliases and alias bombs,
truncation), drawn from a fixed seed so a failure reproduces. The commands run in-process
through their `main([...])`, as a user would call them, with the whole run bounded in time.
"""

from __future__ import annotations

import copy
import io
import json
import random
import time
from pathlib import Path

import yaml

from kubectl_mesh.cli import accesslog, clusters, endpoints, listeners, routes, secrets, sync
from kubectl_mesh.errors import ExitCode

DUMPS = Path("/work/shared/istio-dumps")
TESTS = Path(__file__).resolve().parents[1]
SEED = 20261206
CASES = 600
TIME_BOUND = 45.0  # seconds for the whole fuzz run; the case count is usually reached first

# Exit codes a `--file` run may end with (README "Exit codes"): ok, file not found, bad input,
# findings (a broken trace, NOT SYNCED proxies).
DOCUMENTED = {ExitCode.OK, ExitCode.NOT_FOUND, ExitCode.BAD_INPUT, ExitCode.FINDINGS}

DUMP_COMMANDS = [
    (routes.main, []), (routes.main, ["--summary"]), (clusters.main, []),
    (listeners.main, []), (endpoints.main, []), (secrets.main, []),
    (routes.main, ["--trace", "http://catalog.istioinaction.io/items"]),
    (routes.main, ["--trace", "http://productpage:9080/productpage"]),
    (routes.main, ["--check"]),
]
FORMATS = ["short", "wide", "json", "yaml"]
CONTROL = ["\x1b[2J", "\x1b]0;pwned\x07", "\n", "\r", "\t", "\x00", "\u202e", "\x9b31m"]


def _dump_inputs() -> list[tuple[str, object]]:
    out = []
    for path in sorted(DUMPS.iterdir()):
        if path.suffix == ".json":
            out.append((path.name, json.loads(path.read_text())))
        elif path.suffix == ".yaml":
            out.append((path.name, yaml.safe_load(path.read_text())))
    return out


def _syncz_inputs() -> list[tuple[str, object]]:
    paths = sorted((TESTS / "sync" / "data").glob("syncz_*.json")) + \
        sorted((TESTS / "syncz" / "golden" / "_payloads").glob("*.json"))
    return [(p.name, json.loads(p.read_text())) for p in paths]


def _log_inputs() -> list[tuple[str, list[str]]]:
    return [(p.name, p.read_text().splitlines(keepends=True))
            for p in sorted((TESTS / "accesslog" / "data").glob("*.log"))]


# ---- structure-aware mutations ----------------------------------------------------------------


def _nodes(doc) -> list[tuple[object, object]]:
    """(container, key) of every value in `doc` (iteratively: documents are deep)."""
    out = []
    stack = [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else \
            enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            out.append((node, key))
            if isinstance(value, (dict, list)):
                stack.append(value)
    return out


def _other_type(rnd: random.Random, value):
    choices = [None, True, 0, -1, 2**70, 3.5, "", "x", [], [1, "a"], {}, {"a": 1}]
    if isinstance(value, str):
        choices += [int(value) if value.isdigit() else 7, [value], {"value": value}]
    return rnd.choice([c for c in choices if type(c) is not type(value)] or choices)


def _mutate(rnd: random.Random, doc):
    """A mutated deep copy of `doc` and the kind of mutation (several at once sometimes)."""
    doc = copy.deepcopy(doc)
    kinds = []
    for _ in range(rnd.choice([1, 1, 1, 2, 5])):
        nodes = _nodes(doc)
        if not nodes:
            break
        container, key = rnd.choice(nodes)
        kind = rnd.choice(["type", "type", "delete", "control", "nest", "share"])
        if kind == "type":
            container[key] = _other_type(rnd, container[key])
        elif kind == "delete" and isinstance(container, dict):
            del container[key]
        elif kind == "control":
            strings = [(c, k) for c, k in nodes if isinstance(c[k], str)]
            if strings:
                container, key = rnd.choice(strings)
                at = rnd.randrange(len(container[key]) + 1)
                container[key] = container[key][:at] + rnd.choice(CONTROL) + container[key][at:]
        elif kind == "nest":
            for _ in range(rnd.choice([3, 40, 200])):
                container[key] = rnd.choice([[container[key]], {"value": container[key]}])
        elif kind == "share":  # the same object twice: YAML writes an anchor and an alias
            other = rnd.choice(nodes)
            shared = other[0][other[1]]
            inside = {id(c) for c, _ in _nodes(shared)} | {id(shared)}
            if id(container) not in inside:  # no cycle
                container[key] = shared
        kinds.append(kind)
    return doc, "+".join(kinds)


ALIAS_BOMB = "".join(
    [f"a0: &a0 [{', '.join(['lol'] * 9)}]\n"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)]
)


def _render(rnd: random.Random, doc) -> tuple[str, str]:
    """The document as file text: JSON, YAML (with aliases where it shares objects), or one of
    the hostile texts no mutation of a parsed document can give."""
    form = rnd.choices(["json", "yaml", "deep", "bomb", "cut", "recursive"],
                       weights=[8, 6, 2, 1, 2, 1])[0]
    if form == "json":
        return form, json.dumps(doc, ensure_ascii=rnd.random() < 0.5)
    if form == "yaml":
        return form, yaml.safe_dump(doc, sort_keys=False)
    if form == "deep":  # deeper than any stack: 100k levels somewhere in the document
        depth = rnd.choice([1_000, 100_000])
        opener, closer = rnd.choice([("[", "]"), ('{"a":', "}")])
        text = json.dumps({"configs": [doc]} if rnd.random() < 0.5 else doc)
        at = text.rfind("}") if rnd.random() < 0.5 else len(text) - 1
        if rnd.random() < 0.5:
            return form, text[:at] + (', "deep": ' if text[at - 1] not in "{[" else '"deep": ') \
                + opener * depth + "1" + closer * depth + text[at:]
        return form, "- " * depth + "x\n"  # YAML block nesting
    if form == "bomb":
        return form, ALIAS_BOMB + yaml.safe_dump({"configs": [doc]}, sort_keys=False)
    if form == "recursive":
        return form, "configs: &c\n- *c\n- {dynamic_route_configs: *c}\n"
    text = json.dumps(doc)
    return form, text[: rnd.randrange(len(text) + 1)]


def _log_mutation(rnd: random.Random, lines: list[str]) -> str:
    lines = list(lines)
    for _ in range(rnd.choice([1, 3, 20])):
        i = rnd.randrange(len(lines))
        line = lines[i]
        kind = rnd.choice(["control", "cut", "json", "bytes", "long"])
        if kind == "control":
            at = rnd.randrange(len(line))
            lines[i] = line[:at] + rnd.choice(CONTROL).replace("\n", "\x1b[A") + line[at:]
        elif kind == "cut":
            lines[i] = line[: rnd.randrange(len(line))] + "\n"
        elif kind == "json":
            lines[i] = json.dumps({"start_time": rnd.choice([1, None, "x", [], "2026-13-40"]),
                                   "response_code": rnd.choice(["x", None, {}, 200]),
                                   "duration": rnd.choice(["1", -5, [], 3]),
                                   "path": "/\x1b[2J"}) + "\n"
        elif kind == "bytes":
            lines[i] = "\udcff\x00\x7f" + line
        else:
            lines[i] = line.rstrip("\n") * 50 + "\n"
    return "".join(lines)


# ---- running ----------------------------------------------------------------------------------


def _run(main, argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _check(code, stdout, stderr, fmt, what):
    assert code in DOCUMENTED, f"{what}: exit {code}\n{stderr}"
    assert "Traceback" not in stderr and "unexpected" not in stderr, f"{what}:\n{stderr}"
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if code != ExitCode.OK and code != ExitCode.FINDINGS:
        assert len(errors) == 1 and stderr.endswith(errors[0] + "\n"), f"{what}:\n{stderr}"
    assert len(errors) <= 1, f"{what}:\n{stderr}"
    assert "\x1b" not in stderr and "\x9b" not in stderr, f"{what}: raw ESC on stderr"
    if fmt in ("short", "wide"):
        assert "\x1b" not in stdout and "\x9b" not in stdout, f"{what}: raw ESC on stdout"


def test_every_file_command_survives_mutated_inputs(tmp_path):
    rnd = random.Random(SEED)
    dumps, syncz, logs = _dump_inputs(), _syncz_inputs(), _log_inputs()
    deadline = time.monotonic() + TIME_BOUND
    seen: dict[int, int] = {}
    failures: list[str] = []
    done = 0
    for case in range(CASES):
        if time.monotonic() > deadline:
            break
        fmt = rnd.choice(FORMATS)
        family = rnd.choice(["dump"] * 6 + ["sync", "accesslog"])
        path = tmp_path / f"case-{case}"
        if family == "accesslog":
            name, lines = rnd.choice(logs)
            path.write_text(_log_mutation(rnd, lines), errors="surrogateescape")
            main, argv = accesslog.main, ["--file", str(path), "-o", fmt] + \
                rnd.choice([[], ["--strict"], ["--by", "code"], ["--by", "route"]])
            what = f"case {case}: accesslog {argv} from {name}"
        else:
            name, doc = rnd.choice(syncz if family == "sync" else dumps)
            mutated, kinds = _mutate(rnd, doc)
            form, text = _render(rnd, mutated)
            path.write_text(text)
            if family == "sync":
                main, flags = sync.main, ["-A"]
            else:
                main, flags = rnd.choice(DUMP_COMMANDS)
            argv = ["--file", str(path), "-o", fmt, *flags]
            what = f"case {case}: {main.__module__} {argv} from {name} ({kinds}, {form})"
        code, stdout, stderr = _run(main, argv)
        try:
            _check(code, stdout, stderr, fmt, what)
        except AssertionError as e:
            failures.append(str(e))
        seen[code] = seen.get(code, 0) + 1
        done += 1
    assert not failures, f"{len(failures)} of {done} cases failed:\n" + "\n".join(failures[:15])
    # The mutations must reach both outcomes, or the fuzzing tests nothing.
    assert seen.get(ExitCode.BAD_INPUT, 0) >= done // 10, seen
    assert seen.get(ExitCode.OK, 0) + seen.get(ExitCode.FINDINGS, 0) >= done // 10, seen
    assert done >= 100, f"only {done} cases within {TIME_BOUND} s"
