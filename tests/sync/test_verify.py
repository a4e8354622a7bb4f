"""--verify's checks on real captured Envoy stats/dumps, and on small variations of them."""

from __future__ import annotations

import copy

import pytest

from kubectl_mesh.sync.verify import (DISCONNECTED, LAGGING, REJECTED, UNKNOWN, WARNING_LEVEL,
                                      control_plane_id, envoy_state, has_errors,
                                      istiod_versions, proxy_findings)

from .cases import load, proxies

CATALOG = "catalog-5c99bc2986-e58ef.istioinaction"


def _catalog(payload):
    return next(p for p in proxies(payload) if p.name == CATALOG)


def _stats_with(stats, name, value):
    out = copy.deepcopy(stats)
    for s in out["stats"]:
        if s["name"] == name:
            s["value"] = value
    return out


def test_cds_nack_is_rejected_with_envoy_counter_and_istiod_error():
    state = envoy_state(load("nack_envoy_stats.json"), load("nack_envoy_listeners.json"))
    assert state.rejected["CDS"] == 1 and state.connected is True
    found = proxy_findings(CATALOG, _catalog("syncz_error.json"), state,
                           load("nack_istiod_dump.json"))
    assert [(f.check, f.type) for f in found] == [(REJECTED, "CDS")]
    assert "update_rejected=1" in found[0].detail
    assert "minimum_ring_size (2048) > maximum_ring_size (1024)" in found[0].detail
    # the version Envoy kept is the accepted one, not what istiod sent
    assert state.versions["CDS"] in found[0].detail
    assert istiod_versions(load("nack_istiod_dump.json"))["CDS"] != state.versions["CDS"]
    assert has_errors(found)


def test_rds_nack_names_the_route_config():
    gw = next(p for p in proxies("syncz_rds_error.json") if p.name.startswith("istio-ingress"))
    state = envoy_state(load("rds_nack_envoy_stats.json"), load("rds_nack_envoy_listeners.json"))
    found = proxy_findings(gw.name, gw, state, load("rds_nack_istiod_dump.json"))
    rds = [f for f in found if f.type == "RDS"]
    assert len(rds) == 1 and rds[0].check == REJECTED and rds[0].severity == "error"
    assert "(http.8080)" in rds[0].detail and "Only unique values for domains" in rds[0].detail
    # the CDS rejection from earlier in the same run is only a warning: CDS is accepted now
    cds = [f for f in found if f.type == "CDS"]
    assert [f.severity for f in cds] == [WARNING_LEVEL]


def test_synced_proxy_with_matching_versions_has_no_findings():
    gw = next(p for p in proxies("syncz_synced_after_nack.json") if p.name.startswith("istio-"))
    stats = load("rds_nack_envoy_stats.json")
    state = envoy_state(stats, {"configs": []})
    dump = load("synced_istiod_dump.json")
    # Make Envoy's accepted versions equal to what istiod sent, and no rejections:
    wanted = istiod_versions(dump)
    fixed = copy.deepcopy(stats)
    for s in fixed["stats"]:
        if s["name"].endswith("update_rejected"):
            s["value"] = 0
    state = envoy_state(fixed, {"configs": []})
    for key, version in wanted.items():
        state.versions[key] = version
    assert proxy_findings(gw.name, gw, state, dump) == []


def test_version_lag_where_istiod_believes_synced():
    gw = next(p for p in proxies("syncz_synced_after_nack.json") if p.name.startswith("istio-"))
    dump = load("synced_istiod_dump.json")
    stats = _stats_with(load("rds_nack_envoy_stats.json"), "listener_manager.lds.version_text",
                        "0ld")
    found = proxy_findings(gw.name, gw, envoy_state(stats, None), dump)
    lag = [f for f in found if f.check == LAGGING]
    assert "LDS" in [f.type for f in lag]
    assert "Envoy has 0ld" in next(f for f in lag if f.type == "LDS").detail


def test_disconnected_proxy():
    stats = _stats_with(load("nack_envoy_stats.json"), "control_plane.connected_state", 0)
    found = proxy_findings(CATALOG, _catalog("syncz_synced.json"), envoy_state(stats, None), None)
    assert DISCONNECTED in [f.check for f in found]


def test_proxy_no_istiod_lists_names_its_control_plane():
    found = proxy_findings(CATALOG, None, envoy_state(load("nack_envoy_stats.json"), None), None)
    assert found[0].check == UNKNOWN
    assert "connected to control plane vm (1.28.0-sandbox)" in found[0].detail


def test_lds_error_state_text_is_reported():
    listeners = {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                              "dynamic_listeners": [{"name": "0.0.0.0_8080", "error_state": {
                                  "details": "Error adding/updating listener(s) 0.0.0.0_8080: "
                                             "duplicate filter chain match",
                                  "last_update_attempt": "2026-01-01T00:00:00Z"}}]}]}
    stats = _stats_with(load("nack_envoy_stats.json"), "listener_manager.lds.update_rejected", 2)
    found = proxy_findings(CATALOG, _catalog("syncz_synced.json"),
                           envoy_state(stats, listeners), None)
    lds = next(f for f in found if f.type == "LDS")
    assert lds.check == REJECTED and "duplicate filter chain match" in lds.detail


@pytest.mark.parametrize("identifier,expected", [
    ('{"Component": "istiod", "ID": "istiod-7f9c", "Info": {"version": "1.22"}}', "istiod-7f9c (1.22)"),
    ("not json", "not json"), (None, "unknown")], ids=["json", "raw", "none"])
def test_control_plane_id(identifier, expected):
    assert control_plane_id(identifier) == expected


class _VanishingSession:
    """A session whose port-forwards find the pod gone (404), or the API server away."""

    def __init__(self, error):
        self.error = error

    def admin(self, pod):
        raise self.error


def _listed(name: str):
    from kubectl_mesh.syncstatus import ProxySync
    return ProxySync(name=name, cluster_id="Kubernetes", proxy_type="sidecar",
                     proxy_version="1.40.0", istio_version="1.28.0", types=(),
                     has_subscriptions=True, istiod="istiod-1")


def test_verify_reports_pods_that_vanish_or_are_not_running_as_gone():
    from kubectl_mesh.errors import NotFoundError
    from kubectl_mesh.sync.probe import verify_proxies
    from kubectl_mesh.sync.verify import GONE

    listed = [_listed("a.ns"), _listed("b.ns")]
    session = _VanishingSession(NotFoundError('pods "a" not found'))
    found = verify_proxies(session, listed, {"a.ns": object()}, {}, concurrency=2, stderr=None)
    by_proxy = {f.proxy: f for f in found}
    assert by_proxy["a.ns"].check == GONE and "vanished while it was being verified" in \
        by_proxy["a.ns"].detail and 'pods "a" not found' in by_proxy["a.ns"].detail
    assert by_proxy["b.ns"].check == GONE and "istiod istiod-1 lists it, but there is no such " \
        "Running pod" in by_proxy["b.ns"].detail


def test_verify_unreachable_envoy_is_a_finding_but_rbac_fails_the_run():
    from kubectl_mesh.errors import ForbiddenError, UnreachableError
    from kubectl_mesh.sync.probe import verify_proxies
    from kubectl_mesh.sync.verify import UNREACHABLE

    pods = {"a.ns": object()}
    found = verify_proxies(_VanishingSession(UnreachableError("timed out")), [_listed("a.ns")],
                           pods, {}, concurrency=1, stderr=None)
    assert [f.check for f in found] == [UNREACHABLE]
    with pytest.raises(ForbiddenError):
        verify_proxies(_VanishingSession(ForbiddenError("no pods/portforward")),
                       [_listed("a.ns")], pods, {}, concurrency=1, stderr=None)


class _HealthySession:
    """Port-forwards whose Envoy says: connected, nothing rejected."""

    class _Admin:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def stats(self, filter=None):  # noqa: A002 - Envoy's parameter name
            return {"stats": [{"name": "control_plane.connected_state", "value": 1}]}

    def admin(self, pod):
        return self._Admin()


class _SilentIstiod:
    name = "istiod-1"

    def config_dump(self, proxy_id):
        from kubectl_mesh.errors import UnreachableError
        raise UnreachableError("istiod istio-system/istiod-1 did not answer within 5s")


def test_istiod_that_cannot_give_its_view_is_a_warning_not_an_envoy_problem():
    from kubectl_mesh.sync.probe import verify_proxies
    from kubectl_mesh.sync.verify import UNREACHABLE, has_errors

    found = verify_proxies(_HealthySession(), [_listed("a.ns")], {"a.ns": object()},
                           {"istiod-1": _SilentIstiod()}, concurrency=2, stderr=None)
    assert [(f.check, f.severity) for f in found] == [(UNREACHABLE, WARNING_LEVEL)]
    assert found[0].detail.startswith("istiod istiod-1 did not give its view of this proxy")
    assert "Envoy" not in found[0].detail and not has_errors(found)
