"""Bad input: one clear BadInputError line naming the source and what was expected."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from kubectl_mesh.configdump import ConfigDump, load_dump, read_dump
from kubectl_mesh.configdump.keys import looks_camel, normalise, snake
from kubectl_mesh.errors import BadInputError, ExitCode, NotFoundError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_not_json_or_yaml(tmp_path):
    path = write(tmp_path, "notes.txt", "key: [unclosed\n  - : :\n")
    with pytest.raises(BadInputError) as e:
        read_dump(path)
    assert str(e.value) == f"{path} is neither JSON nor YAML; expected an Envoy config dump"
    assert e.value.exit_code == ExitCode.BAD_INPUT


def test_plain_text_is_not_a_dump(tmp_path):
    path = write(tmp_path, "hello.txt", "hello world\n")
    with pytest.raises(BadInputError, match=r"hello.txt is not an Envoy config dump \(expected a "
                                            r"JSON/YAML object, got str\)"):
        read_dump(path)


def test_truncated_json(tmp_path):
    full = Path("/work/shared/istio-dumps/ingressgw_http_8080_rds_cds.json").read_text()
    path = write(tmp_path, "cut.json", full[: len(full) // 2])
    with pytest.raises(BadInputError) as e:
        read_dump(path)
    msg = str(e.value)
    assert msg.startswith(f"{path} is not valid JSON (") and "truncated?" in msg
    assert "\n" not in msg


def test_json_that_is_not_a_dump():
    with pytest.raises(BadInputError, match=r"^x.json is JSON but not an Envoy config dump "
                                            r"\(no 'configs' list; top-level keys: items, kind\)"):
        load_dump(json.dumps({"kind": "PodList", "items": []}), "x.json")


def test_dump_without_requested_section():
    dump = read_dump("/work/shared/istio-dumps/gateway_routes_empty.json")
    with pytest.raises(BadInputError) as e:
        dump.clusters
    assert str(e.value) == ("/work/shared/istio-dumps/gateway_routes_empty.json has no clusters "
                            "section (ClustersConfigDump); sections present: routes")


def test_clusters_json_has_only_endpoints():
    dump = read_dump("/work/shared/istio-dumps/legacy_admin_clusters_format_json.json")
    assert dump.has("endpoints") and not dump.has("routes")
    with pytest.raises(BadInputError, match="is Envoy /clusters output, which has endpoints only"):
        dump.routes


def test_empty_file(tmp_path):
    with pytest.raises(BadInputError, match="is empty"):
        read_dump(write(tmp_path, "e.json", "  \n"))


def test_missing_file(tmp_path):
    with pytest.raises(NotFoundError, match="not found"):
        read_dump(str(tmp_path / "nope.json"))


def test_stdin_dash():
    text = Path("/work/shared/istio-dumps/gateway_routes_empty.json").read_text()
    dump = read_dump("-", stdin=io.StringIO(text))
    assert dump.source == "<stdin>" and len(dump.routes) == 2


def test_bare_section_and_resource_form():
    section = {"@type": "type.googleapis.com/envoy.admin.v2alpha.ClustersConfigDump",
               "dynamicActiveClusters": [{"cluster": {"name": "outbound|80||a.b.svc.cluster.local",
                                                      "type": "EDS"}}]}
    assert [c.name for c in ConfigDump(section, "s").clusters] == [
        "outbound|80||a.b.svc.cluster.local"]
    resource = {"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster",
         "cluster": {"name": "x", "type": "EDS"}, "version_info": "7"}]}
    (c,) = ConfigDump(resource, "r").clusters
    assert (c.name, c.state, c.version_info) == ("x", "active", "7")
    assert ConfigDump({}, "empty").has("clusters") is False


@pytest.mark.parametrize("key,expected", [
    ("dynamicActiveClusters", "dynamic_active_clusters"), ("version_info", "version_info"),
    ("@type", "@type"), ("envoy.lb", "envoy.lb"), ("ROOTCA", "ROOTCA"), ("portValue", "port_value"),
], ids=["camel", "snake", "at-type", "dotted", "upper", "port"])
def test_snake(key, expected):
    assert snake(key) == expected


def test_normalise_leaves_snake_untouched_and_converts_camel():
    snake_obj = {"cluster": {"name": "a", "connect_timeout": "1s"}}
    assert normalise(snake_obj) is snake_obj  # no copy on the fast path
    camel = {"cluster": {"connectTimeout": "1s", "metadata": {"filterMetadata": {"istio": {}}}}}
    assert looks_camel(camel)
    assert normalise(camel) == {"cluster": {"connect_timeout": "1s",
                                            "metadata": {"filter_metadata": {"istio": {}}}}}
