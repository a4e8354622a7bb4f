"""The admin PATH as typed → what is sent, and which endpoints need --allow-write."""

from __future__ import annotations

import pytest

from kubectl_mesh.adminapi.endpoints import WRITES, AdminPath
from kubectl_mesh.errors import UsageError


@pytest.mark.parametrize("typed, target", [
    ("/server_info", "/server_info"),
    ("stats?filter=http", "/stats?filter=http"),
    ("/stats?filter=cds|lds", "/stats?filter=cds%7Clds"),
    ("/stats?filter=^cluster\\.outbound", "/stats?filter=%5Ecluster%5C.outbound"),
    ("/stats?filter=a b", "/stats?filter=a%20b"),
    ("/stats?filter=a%20b", "/stats?filter=a%20b"),  # already encoded: left as it is
    ("/config_dump?resource=dynamic_active_clusters&mask=cluster.name",
     "/config_dump?resource=dynamic_active_clusters&mask=cluster.name"),
], ids=["plain", "no-slash", "pipe", "regex", "space", "encoded", "query"])
def test_paths_are_encoded_for_envoy(typed, target):
    assert AdminPath.parse(typed).target == target


@pytest.mark.parametrize("typed", ["", "  ", "/st\nats", "/x\x1b[2J", "/a#b",
                                   "http://127.0.0.1:15000/stats"],
                         ids=["empty", "blank", "newline", "escape", "fragment", "url"])
def test_bad_paths_are_usage_errors(typed):
    with pytest.raises(UsageError):
        AdminPath.parse(typed)


@pytest.mark.parametrize("typed, allow, method", [
    ("/config_dump", False, "GET"),
    ("/config_dump", True, "GET"),
    ("/quitquitquit", True, "POST"),
    ("/logging?level=debug", True, "POST"),
    ("/healthcheck/fail", True, "POST"),
    ("/tap", False, "GET"),  # unknown: Envoy's 405 tells if it wants POST
    ("/tap", True, "POST"),
    ("/quitquitquit/", False, "GET"),  # Envoy matches paths exactly: not /quitquitquit
], ids=["read", "read-allowed", "quit", "logging", "hc-fail", "unknown", "unknown-allowed",
        "trailing-slash"])
def test_method(typed, allow, method):
    assert AdminPath.parse(typed).method(allow) == method


def test_every_mutating_endpoint_of_the_spec_is_a_write():
    spec = {"/quitquitquit", "/healthcheck/fail", "/healthcheck/ok", "/drain_listeners",
            "/logging", "/reset_counters", "/runtime_modify", "/cpuprofiler", "/heapprofiler"}
    assert spec <= set(WRITES)
    assert all(AdminPath.parse(p + "?x=1").writes for p in spec)
