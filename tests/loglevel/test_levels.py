"""The `--level` spec, validation against each pod's loggers, plans and change lines."""

from __future__ import annotations

import pytest

from kubectl_mesh.errors import UsageError
from kubectl_mesh.loglevel.levels import LevelSpec, PodPlan, describe, normalize_level, plan
from kubectl_mesh.loglevel.meshdefault import from_configmap

LOGGERS = {"admin": "warning", "http": "warning", "router": "info", "upstream": "warning"}


@pytest.mark.parametrize("text, expected", [
    ("debug", LevelSpec(every="debug")),
    ("WARN", LevelSpec(every="warning")),
    ("http:debug", LevelSpec(loggers=(("http", "debug"),))),
    ("http:debug,router=trace", LevelSpec(loggers=(("http", "debug"), ("router", "trace")))),
    (" http = warn , router:OFF ", LevelSpec(loggers=(("http", "warning"), ("router", "off")))),
], ids=["all", "alias-upper", "one", "colon-and-equals", "spaces-alias"])
def test_spec_parses(text, expected):
    assert LevelSpec.parse(text) == expected


@pytest.mark.parametrize("text, message", [
    ("verbose", "unknown log level 'verbose': valid levels: trace, debug, info, warning"),
    ("degub", "did you mean 'debug'?"),
    ("http:degub", "did you mean 'debug'?"),
    ("http:debug,router", "invalid --level part 'router'"),
    ("http:debug,http:info", "logger 'http' appears twice"),
    ("", "--level is empty"),
], ids=["unknown", "typo", "typo-per-logger", "missing-level", "twice", "empty"])
def test_bad_specs_are_usage_errors(text, message):
    with pytest.raises(UsageError) as e:
        LevelSpec.parse(text)
    assert message in str(e.value)
    assert e.value.exit_code == 2


def test_warn_alias_is_sent_as_warning():
    assert normalize_level("warn") == "warning"  # Envoy answers 400 to ?level=warn


def test_unknown_logger_names_valid_ones_and_closest():
    spec = LevelSpec.parse("htp:debug")
    with pytest.raises(UsageError) as e:
        plan(spec, [("a.ns", LOGGERS, None), ("b.ns", LOGGERS, None)])
    msg = str(e.value)
    assert "unknown logger 'htp' (no selected pod has it): did you mean 'http'?" in msg
    assert "valid loggers: admin, http, router, upstream" in msg


def test_logger_missing_on_one_pod_is_an_error_naming_it():
    older = {k: v for k, v in LOGGERS.items() if k != "upstream"}
    with pytest.raises(UsageError) as e:
        plan(LevelSpec.parse("http:debug,upstream:debug"),
             [("a.ns", LOGGERS, None), ("b.ns", older, None), ("c.ns", LOGGERS, None)])
    assert "unknown logger 'upstream' (1 of 3 pods lack it: b.ns)" in str(e.value)
    # only loggers every pod has are offered
    assert "valid loggers: admin, http, router" in str(e.value)


def test_plan_changes_only_what_moves():
    plans = plan(LevelSpec.parse("http:debug,router:info"), [("a.ns", LOGGERS, None)])
    (p,) = plans
    assert p.changes == {"http": ("warning", "debug")}  # router already info
    assert p.forward() == {"http": "debug"}
    assert p.backward() == {"http": "warning"}
    assert p.reversed().changes == {"http": ("debug", "warning")}


def test_plan_all_loggers_keeps_each_previous_level_for_restore():
    (p,) = plan(LevelSpec.parse("debug"), [("a.ns", LOGGERS, None)])
    assert p.backward() == {"admin": "warning", "http": "warning", "router": "info",
                            "upstream": "warning"}


def test_describe_groups_by_transition():
    p = PodPlan.of("gw-7d9f.istio-system", LOGGERS, {**LOGGERS, "http": "debug"})
    assert describe(p) == "gw-7d9f.istio-system: http warning→debug"
    many = {f"l{i}": "warning" for i in range(10)}
    p = PodPlan.of("x.ns", many, {k: "debug" for k in many})
    assert describe(p) == "x.ns: all 10 loggers warning→debug"
    p = PodPlan.of("x.ns", LOGGERS, {k: "debug" for k in LOGGERS})
    assert describe(p) == "x.ns: admin, http, upstream warning→debug; router info→debug"
    assert describe(PodPlan.of("x.ns", LOGGERS, LOGGERS)) == "x.ns: unchanged"
    assert describe(p.reversed(), verb="restored").endswith("router debug→info (restored)")


@pytest.mark.parametrize("configmap, level, source", [
    (None, "warning", "there is no configmap istio-system/istio-sidecar-injector"),
    ({"data": {"values": '{"global":{"proxy":{"logLevel":"info"}}}'}}, "info",
     "global.proxy.logLevel in configmap"),
    ({"data": {"values": '{"global":{"proxy":{"logLevel":"warn"}}}'}}, "warning", "global.proxy"),
    ({"data": {"values": '{"global":{}}'}}, "warning", "sets no global.proxy.logLevel"),
    ({"data": {"values": "{not json"}}, "warning", "is not JSON"),
    ({"data": {"values": '{"global":{"proxy":{"logLevel":"loud"}}}'}}, "warning", "is not a level"),
], ids=["missing", "info", "alias", "unset", "bad-json", "bad-level"])
def test_mesh_default(configmap, level, source):
    default = from_configmap(configmap)
    assert default.level == level and source in default.source
