"""Hostile `--file` input: names that would drive the terminal, YAML alias bombs, deep
nesting, oversized files and wrongly typed fields. Each ends in readable output or one
`error:` line with exit 6 – never raw escapes, a traceback, or gigabytes of memory."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubectl_mesh.cli import accesslog, clusters, listeners, routes, sync
from kubectl_mesh.errors import ExitCode

DUMPS = Path("/work/shared/istio-dumps")
TESTS = Path(__file__).resolve().parents[1]
GATEWAY = DUMPS / "ingressgw_http_8080_rds_cds.json"
EVIL = "\x1b[2J\x1b[31mEVIL\x1b]0;owned\x07"


def run(main, *argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def gateway_dump() -> dict:
    return json.loads(GATEWAY.read_text())


def route_section(dump: dict) -> dict:
    return next(c for c in dump["configs"] if c["@type"].endswith(".RoutesConfigDump"))


def write_json(tmp_path, doc, name="dump.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


# ---- control characters ------------------------------------------------------------------------


def hostile_gateway(tmp_path) -> str:
    dump = gateway_dump()
    config = route_section(dump)["dynamic_route_configs"][0]["route_config"]
    config["name"] = "http.8080" + EVIL
    config["virtual_hosts"][0]["name"] = "*:80\nforged-route     forged-vhost     *     /*     404"
    return write_json(tmp_path, dump)


@pytest.mark.parametrize("fmt", ["short", "wide"])
def test_table_escapes_control_characters_in_names(tmp_path, fmt):
    path = hostile_gateway(tmp_path)
    code, plain, _ = run(routes.main, "--file", str(GATEWAY), "-o", fmt)
    code, out, err = run(routes.main, "--file", path, "-o", fmt)
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    # one line per row, as many as without the hostile names: no forged row
    assert len(out.splitlines()) == len(plain.splitlines())
    assert not any(line.startswith("forged-route") for line in out.splitlines())
    assert "http.8080\\x1b[2J\\x1b[31mEVIL\\x1b]0;owned\\x07" in out
    assert "*:80\\nforged-route" in out


def test_json_and_yaml_keep_the_names_exact(tmp_path):
    path = hostile_gateway(tmp_path)
    code, out, _ = run(routes.main, "--file", path, "-o", "json")
    assert code == 0
    assert json.loads(out)[0]["name"] == "http.8080" + EVIL
    code, out, _ = run(routes.main, "--file", path, "-o", "yaml")
    import yaml
    assert code == 0 and yaml.safe_load(out)[0]["name"] == "http.8080" + EVIL


def test_trace_escapes_the_url_on_stdout_and_in_the_error_line(tmp_path):
    url = "http://nowhere.example/" + EVIL
    code, out, err = run(routes.main, "--file", str(GATEWAY), "--trace", url)
    assert code == ExitCode.FINDINGS
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert out.splitlines()[0] == "GET http://nowhere.example/\\x1b[2J\\x1b[31mEVIL\\x1b]0;owned\\x07"
    assert len(err.splitlines()) == 1 and "\\x1b[2J" in err


def test_error_messages_escape_names(tmp_path):
    missing = str(tmp_path / ("dump" + EVIL + "\nerror: forged.json"))
    code, out, err = run(clusters.main, "--file", missing)
    assert code == ExitCode.NOT_FOUND
    assert err.count("\n") == 1 and "\x1b" not in err
    assert err.startswith("error: file ") and "\\x1b[2J" in err and "\\nerror: forged" in err


def test_accesslog_table_escapes_control_characters(tmp_path):
    line = ('[2026-11-26T03:30:54.911Z] "GET /items' + EVIL + ' HTTP/1.1" 200 - via_upstream - '
            '"-" 0 6 3 2 "-" "curl" "id-1" "catalog\nforged" "10.0.0.7:3000" outbound|80||c '
            '10.0.0.1:1 10.0.0.2:80 10.0.0.3:2 - default\n')
    # the newline inside the authority splits the line: write it JSON-encoded as Envoy's
    # JSON format would, and the TEXT line without it
    json_line = json.dumps({"start_time": "2026-11-26T03:30:55.000Z", "method": "GET",
                            "path": "/x" + EVIL, "response_code": 503, "duration": 1,
                            "authority": "catalog\nforged-row"}) + "\n"
    log = tmp_path / "proxy.log"
    log.write_text(line.replace("catalog\nforged", "catalog") + json_line)
    for fmt in ("short", "wide"):
        code, out, err = run(accesslog.main, "--file", str(log), "-o", fmt)
        assert code == 0, err
        assert "\x1b" not in out and "\x07" not in out
        assert len(out.splitlines()) == 3  # header and two requests
        assert "/items\\x1b[2J" in out and "catalog\\nforged-row" in out
    code, out, _ = run(accesslog.main, "--file", str(log), "-o", "json")
    assert json.loads(out)[1]["authority"] == "catalog\nforged-row"


def test_sync_notes_escape_the_nack_message(tmp_path):
    payload = json.loads((TESTS / "sync" / "data" / "syncz_error.json").read_text())
    for entry in payload:
        for r in (entry.get("resources") or {}).values():
            if r.get("lastError"):
                r["lastError"] = "bad cluster" + EVIL + "\nerror: forged"
    path = write_json(tmp_path, payload, "syncz.json")
    code, out, err = run(sync.main, "--file", path, "-A")
    assert code == ExitCode.FINDINGS
    assert "\x1b" not in out + err
    nack = [line for line in err.splitlines() if "(NACK)" in line]
    assert nack and all(line.endswith("bad cluster\\x1b[2J\\x1b[31mEVIL\\x1b]0;owned\\x07"
                                      "\\nerror: forged") for line in nack)
    assert not any(line.startswith("error: forged") for line in err.splitlines())


# ---- input bounds --------------------------------------------------------------------------------


def alias_bomb() -> str:
    """~3.7 KB of YAML whose aliases expand to 10^9 strings (the "billion laughs")."""
    lines = ["a0: &a0 [" + ", ".join(["lolololololololololololol"] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    lines += ["configs:", "- '@type': type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
              "  dynamic_route_configs:", "  - route_config:", "      name: bomb",
              "      virtual_hosts: [{name: vh, domains: ['*'], routes: *a9}]"]
    text = "\n".join(lines) + "\n"
    return text + "#" * (3700 - len(text)) + "\n"


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_yaml_alias_bomb_fails_fast_with_one_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert 3600 < path.stat().st_size < 3800
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", "import sys; from kubectl_mesh.cli.routes "
                           "import main; sys.exit(main())", "--file", str(path), "-o", "json"],
                          capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory)
    assert time.monotonic() - started < 10
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"error: {path}: YAML aliases")
    assert "alias bomb" in done.stderr


def test_recursive_yaml_alias_is_bad_input(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("configs: &c\n- *c\n")
    code, out, err = run(routes.main, "--file", str(path), "-o", "json")
    assert code == ExitCode.BAD_INPUT and out == ""
    assert err == f"error: {path} has a YAML alias that contains itself; expected an Envoy config dump\n"


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,
    '{"configs": [' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "]}",
    "configs:\n" + "- " * 100_000 + "x\n",
], ids=["json-list", "json-object", "yaml-block"])
def test_deep_nesting_is_bad_input(tmp_path, text):
    path = tmp_path / "deep.txt"
    path.write_text(text)
    code, out, err = run(routes.main, "--file", str(path))
    assert code == ExitCode.BAD_INPUT and out == ""
    assert err.count("\n") == 1 and "nests" in err and str(path) in err


def test_oversized_file_is_refused_before_it_is_read(tmp_path):
    from kubectl_mesh.configdump.load import MAX_INPUT_BYTES
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:  # sparse: nothing is written to disk
        f.truncate(MAX_INPUT_BYTES + 1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, out, err = run(listeners.main, "--file", str(path))
    assert code == ExitCode.BAD_INPUT
    assert err == f"error: {path} is larger than 1 GiB; expected an Envoy config dump\n"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB
    os.unlink(path)


# ---- wrongly typed fields ------------------------------------------------------------------------


def test_route_config_name_of_the_wrong_type_names_the_json_path(tmp_path):
    dump = gateway_dump()
    route_section(dump)["dynamic_route_configs"][0]["route_config"]["name"] = 8080
    code, out, err = run(routes.main, "--file", write_json(tmp_path, dump))
    assert code == ExitCode.BAD_INPUT and out == ""
    assert err == (f"error: {tmp_path}/dump.json: configs[0].dynamic_route_configs[0]."
                   "route_config.name: a number where a string belongs; expected an Envoy "
                   "config dump\n")


def test_wrongly_typed_virtual_host_names_its_route(tmp_path):
    dump = gateway_dump()
    vh = route_section(dump)["dynamic_route_configs"][0]["route_config"]["virtual_hosts"][0]
    vh["routes"][1]["route"]["cluster"] = {"name": "x"}
    code, _, err = run(routes.main, "--file", write_json(tmp_path, dump), "-o", "wide")
    assert code == ExitCode.BAD_INPUT
    assert ("configs[0].dynamic_route_configs[0].route_config.virtual_hosts[0].routes[1]"
            ".route.cluster: an object where a string belongs") in err


@pytest.mark.parametrize("mutate, path", [
    (lambda d: d["configs"][1]["dynamic_active_clusters"].__setitem__(0, ["x"]),
     "configs[1].dynamic_active_clusters[0]: an array where an object belongs"),
    (lambda d: d["configs"].__setitem__(1, {**d["configs"][1], "dynamic_active_clusters": 7}),
     "configs[1].dynamic_active_clusters: a number where an array belongs"),
    (lambda d: d["configs"][1]["dynamic_active_clusters"][0]["cluster"].__setitem__(
        "name", None) or d["configs"][1]["dynamic_active_clusters"][0].__setitem__(
        "last_updated", 1.5), "configs[1].dynamic_active_clusters[0].last_updated: a number"),
], ids=["element", "list", "scalar"])
def test_clusters_of_the_wrong_shape(tmp_path, mutate, path):
    dump = gateway_dump()
    mutate(dump)
    code, _, err = run(clusters.main, "--file", write_json(tmp_path, dump))
    assert code == ExitCode.BAD_INPUT, err
    assert err.count("\n") == 1 and path in err and "Traceback" not in err


def test_shape_errors_outside_the_models_are_bad_input_too(tmp_path):
    """The trace matches the raw virtual hosts of the dump, not the model's."""
    dump = json.loads((DUMPS / "legacy_sidecar_productpage_1.4-alpha_full.json").read_text())
    section = route_section(dump)
    section["dynamic_route_configs"][0]["route_config"]["virtual_hosts"][2]["domains"][6] = 7
    code, out, err = run(routes.main, "--file", write_json(tmp_path, dump), "--trace",
                         "http://productpage:9080/productpage", "-o", "json")
    assert code == ExitCode.BAD_INPUT, err
    assert err == (f"error: {tmp_path}/dump.json is not shaped like an Envoy config dump (a "
                   "number where a string belongs) (run with --debug to see where)\n")
