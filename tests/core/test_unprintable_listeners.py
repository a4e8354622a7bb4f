"""`listeners` on an Envoy that cannot print its dynamic listeners (a rejected listener of a
type its build does not know): the static listeners it can print, and a warning naming the
active dynamic ones left out (kubectl_mesh/proxyconfig/unprintable.py). The real case is
tests/real/test_real_istio_nack.py; here an Envoy stand-in that answers as Envoy 1.40 does
there (any dump holding the dynamic listeners is one line of text, `name_regex` or not)."""

from __future__ import annotations

import pytest

from kubectl_mesh.admin import NotJsonError
from kubectl_mesh.configdump import ConfigDump
from kubectl_mesh.proxyconfig.views import ListenersView

SAID = "Failed to convert protobuf message to JSON string: INVALID_ARGUMENT: could not find @type"
LISTENER_DUMP = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"


def listener(name: str, port: int) -> dict:
    return {"name": name, "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy",
                                            "typed_config": {"cluster": "x"}}]}]}


class Envoy:
    def __init__(self, static: dict[str, int], dynamic: dict[str, int], static_prints=True):
        self.static, self.dynamic, self.static_prints = static, dynamic, static_prints
        self.asked: list[str | None] = []

    def listeners(self) -> dict:
        return {"listener_statuses": [
            {"name": n, "local_address": {"socket_address": {"address": "0.0.0.0",
                                                             "port_value": port}}}
            for n, port in {**self.static, **self.dynamic}.items()]}

    def config_dump(self, mask=None, **_) -> dict:
        self.asked.append(mask)
        if "dynamic_listeners" in (mask or "") or not self.static_prints:
            raise NotJsonError("Envoy admin of p returned non-JSON for /config_dump", said=SAID)
        return {"configs": [{"@type": LISTENER_DUMP, "static_listeners": [
            {"listener": listener(n, port)} for n, port in self.static.items()]}]}


def test_the_static_listeners_and_a_warning_naming_the_dynamic_ones():
    envoy = Envoy({"0.0.0.0_15090": 15090, "0.0.0.0_15021": 15021},
                  {"0.0.0.0_80": 80, "virtualOutbound": 15001})
    notes: list[str] = []
    dump = ListenersView().fetch(envoy, None, notes)
    assert sorted(x.name for x in ConfigDump(dump, "p").listeners) == [
        "0.0.0.0_15021", "0.0.0.0_15090"]
    assert envoy.asked == ["static_listeners,dynamic_listeners", "static_listeners"]
    first, second = notes
    assert SAID in first and "its 2 static listeners only" in first and "sync --verify" in first
    assert second == ("2 active dynamic listeners not in the table: 0.0.0.0_80 (0.0.0.0:80), "
                      "virtualOutbound (0.0.0.0:15001)")


def test_no_second_note_when_every_dynamic_listener_was_rejected():
    notes: list[str] = []
    ListenersView().fetch(Envoy({"0.0.0.0_15090": 15090}, {}), None, notes)
    assert len(notes) == 1


def test_the_original_error_when_not_even_the_static_listeners_print():
    with pytest.raises(NotJsonError) as raised:
        ListenersView().fetch(Envoy({"a": 1}, {}, static_prints=False), None, [])
    assert raised.value.said == SAID
