"""--verify's checks on real captured Envoy stats/dumps, and on small variations of them."""

from __future__ import annotations

import copy

import pytest

from kubectl_mesh.sync.verify import (DISCONNECTED, LAGGING, REJECTED, UNKNOWN, WARNING_LEVEL,
                                      control_plane_id, envoy_state, has_errors,
                                      pod_control_plane, proxy_findings, sent_version)
from kubectl_mesh.kube.pods import Pod
from kubectl_mesh.syncz import XDS_TYPES, merge_replicas

from .cases import load, proxies

POD = Pod("a", "ns", "127.0.0.9", ("istio-proxy",), True)  # a pod as the probe sees it

CATALOG = "catalog-5c99bc2986-e58ef.istioinaction"
UUID = "8f99dc12-b6cd-498d-812e-a28bd42b3ede"
URLS = {short: url for short, url, _ in XDS_TYPES}
PREFIXES = {short: prefix for short, _, prefix in XDS_TYPES}


def _catalog(payload):
    return next(p for p in proxies(payload) if p.name == CATALOG)


def _stats_with(stats, name, value):
    out = copy.deepcopy(stats)
    for s in out["stats"]:
        if s["name"] == name:
            s["value"] = value
    return out


def _pushed(payload: str, proxy: str, **versions: str):
    """The syncz `payload` with `proxy`'s sent (and acked) nonces made the way istiod makes
    them, `<push version><UUID>`, for the given types (`CDS="2026-...Z/7"`)."""
    entries = copy.deepcopy(load(payload))
    entry = next(e for e in entries if e["proxy"].startswith(proxy))
    for short, version in versions.items():
        nonce = version + UUID
        resource = entry["resources"][URLS[short]]
        synced = resource["sent"] == resource.get("acked")
        resource["sent"] = entry[f"{PREFIXES[short]}_sent"] = nonce
        if synced:
            resource["acked"] = entry[f"{PREFIXES[short]}_acked"] = nonce
    return next(p for p in merge_replicas({"istiod-1": entries}) if p.name.startswith(proxy))


@pytest.mark.parametrize("nonce,version", [
    ("2026-12-06T15:38:28Z/7" + UUID, "2026-12-06T15:38:28Z/7"),
    (UUID, None),  # a bare UUID carries no version
    ("2026-12-06T15:38:28Z/7" + UUID.upper(), None),
    ("", None), (None, None)], ids=["istiod", "uuid-only", "not-go-uuid", "empty", "none"])
def test_sent_version_is_the_nonce_without_its_uuid(nonce, version):
    assert sent_version(nonce) == version


def test_cds_nack_is_rejected_with_envoy_counter_and_istiod_error():
    state = envoy_state(load("nack_envoy_stats.json"), load("nack_envoy_listeners.json"))
    assert state.rejected["CDS"] == 1 and state.connected is True
    found = proxy_findings(CATALOG, _catalog("syncz_error.json"), state)
    assert [(f.check, f.type) for f in found] == [(REJECTED, "CDS")]
    assert "update_rejected=1" in found[0].detail
    assert "minimum_ring_size (2048) > maximum_ring_size (1024)" in found[0].detail
    # the version Envoy kept is the accepted one, not what istiod sent
    assert state.versions["CDS"] in found[0].detail
    assert has_errors(found)


def test_rds_nack_names_the_route_config():
    gw = next(p for p in proxies("syncz_rds_error.json") if p.name.startswith("istio-ingress"))
    state = envoy_state(load("rds_nack_envoy_stats.json"), load("rds_nack_envoy_listeners.json"))
    found = proxy_findings(gw.name, gw, state)
    rds = [f for f in found if f.type == "RDS"]
    assert len(rds) == 1 and rds[0].check == REJECTED and rds[0].severity == "error"
    assert "(http.8080)" in rds[0].detail and "Only unique values for domains" in rds[0].detail
    # the CDS rejection from earlier in the same run is only a warning: CDS is accepted now
    cds = [f for f in found if f.type == "CDS"]
    assert [f.severity for f in cds] == [WARNING_LEVEL]


def test_eds_rejections_name_the_cluster_without_istios_tag_marker():
    """istiod's clusters' stat names end in `;` (alt_stat_name): `cluster.<name>;.<stat>`."""
    cluster = "outbound|80||catalog.istioinaction.svc.cluster.local"
    stats = {"stats": [{"name": f"cluster.{cluster};.update_rejected", "value": 2},
                       {"name": "http.outbound_0.0.0.0_80;.rds.80.update_rejected", "value": 1}]}
    state = envoy_state(stats, None)
    assert state.rejected_total("EDS") == (2, [cluster])
    assert state.rejected_total("RDS") == (1, ["80"])


def _accepted(**versions):
    """The gateway's real stats, nothing rejected, with Envoy's accepted version_text set
    (`LDS="..."`, `RDS_http_8080="..."` for route http.8080)."""
    stats = copy.deepcopy(load("rds_nack_envoy_stats.json"))
    names = {"CDS": "cluster_manager.cds.version_text",
             "LDS": "listener_manager.lds.version_text"}
    for s in stats["stats"]:
        if s["name"].endswith("update_rejected"):
            s["value"] = 0
    for key, version in versions.items():
        if key.startswith("RDS_"):
            route = key[4:].replace("_", ".")
            name = f"http.outbound_0.0.0.0_8080.rds.{route}.version_text"
        else:
            name = names[key]
        for s in stats["stats"]:
            if s["name"] == name:
                break
        else:
            s = {"name": name}
            stats["stats"].append(s)
        s["value"] = version
    return envoy_state(stats, {"configs": []})


OLD, NEW = "2026-12-06T15:38:23Z/2", "2026-12-06T15:38:28Z/7"


def test_proxy_holding_what_it_was_last_sent_is_not_lagging():
    """Envoy's versions trail istiod's global push version on a proxy that pushes skipped
    (only the last SENT version counts): CDS from push 7, LDS and routes from push 2."""
    gw = _pushed("syncz_synced_after_nack.json", "istio-", CDS=NEW, LDS=OLD, RDS=OLD, EDS=NEW)
    assert proxy_findings(gw.name, gw, _accepted(CDS=NEW, LDS=OLD, RDS_http_8080=OLD)) == []


def test_version_lag_where_istiod_believes_synced():
    gw = _pushed("syncz_synced_after_nack.json", "istio-", CDS=NEW, LDS=NEW, RDS=NEW)
    found = proxy_findings(gw.name, gw, _accepted(CDS=NEW, LDS=OLD, RDS_http_8080=OLD))
    lag = {f.type: f for f in found if f.check == LAGGING}
    assert sorted(lag) == ["LDS", "RDS"] and has_errors(found)
    assert lag["LDS"].detail == f"istiod says SYNCED but LDS: Envoy has {OLD}, istiod sent {NEW}"
    assert lag["RDS"].detail == (f"istiod says SYNCED but RDS http.8080: Envoy has {OLD}, "
                                 f"istiod sent {NEW}")


def test_rds_is_in_sync_when_any_route_holds_the_sent_version():
    """With delta xDS a response carries only the routes that changed: the others keep the
    version they were last sent in."""
    gw = _pushed("syncz_synced_after_nack.json", "istio-", CDS=NEW, LDS=NEW, RDS=NEW)
    fine = _accepted(CDS=NEW, LDS=NEW, RDS_http_8080=OLD, RDS_http_9090=NEW)
    assert proxy_findings(gw.name, gw, fine) == []
    behind = _accepted(CDS=NEW, LDS=NEW, RDS_http_8080=OLD, RDS_http_9090=OLD)
    [lag] = proxy_findings(gw.name, gw, behind)
    assert lag.check == LAGGING and "RDS http.8080: Envoy has" in lag.detail \
        and "RDS http.9090: Envoy has" in lag.detail


def test_no_lag_is_claimed_where_it_cannot_be_told():
    # nonces that carry no version (not istiod's), EDS (pushed incrementally), not SYNCED
    gw = next(p for p in proxies("syncz_synced_after_nack.json") if p.name.startswith("istio-"))
    assert proxy_findings(gw.name, gw, _accepted(CDS=OLD, LDS=OLD, RDS_http_8080=OLD)) == []
    gw = _pushed("syncz_synced_after_nack.json", "istio-", EDS=NEW)
    assert proxy_findings(gw.name, gw, _accepted()) == []
    stale = _pushed("syncz_stale.json", "istio-", CDS=NEW, LDS=NEW, RDS=NEW)
    assert [t.status for t in stale.types if t.type in ("CDS", "LDS", "RDS")] != ["SYNCED"] * 3
    found = proxy_findings(stale.name, stale, _accepted(CDS=OLD, LDS=OLD, RDS_http_8080=OLD))
    assert all(f.type not in [t.type for t in stale.types if t.status != "SYNCED"]
               for f in found if f.check == LAGGING)


def test_disconnected_proxy():
    stats = _stats_with(load("nack_envoy_stats.json"), "control_plane.connected_state", 0)
    found = proxy_findings(CATALOG, _catalog("syncz_synced.json"), envoy_state(stats, None))
    assert DISCONNECTED in [f.check for f in found]


def test_proxy_no_istiod_lists_names_its_control_plane():
    found = proxy_findings(CATALOG, None, envoy_state(load("nack_envoy_stats.json"), None))
    assert found[0].check == UNKNOWN
    assert "connected to control plane vm (1.28.0-sandbox)" in found[0].detail


def test_behind_pilot_agent_the_control_plane_comes_from_the_injection():
    """On a real sidecar Envoy's ADS goes to pilot-agent: control_plane.identifier is empty.
    The injector's sidecar.istio.io/status names the revision instead."""
    stats = _stats_with(load("nack_envoy_stats.json"), "control_plane.identifier", "")
    injected = pod_control_plane({}, {"sidecar.istio.io/status": '{"revision": "canary"}'})
    assert injected == "revision canary"
    found = proxy_findings(CATALOG, None, envoy_state(stats, None), injected)
    assert found[0].check == UNKNOWN
    assert "connected to control plane of revision canary" in found[0].detail
    assert pod_control_plane({"istio.io/rev": "stable"}, {}) == "revision stable"
    assert pod_control_plane({}, {"sidecar.istio.io/status": "not json"}) is None


def test_a_proxy_no_istiod_lists_without_stream_stats_is_not_called_disconnected():
    """Istio's default stats matcher keeps no control_plane.* stats: the stream state is not
    known, and the finding says so rather than "not connected"."""
    stats = {"stats": [s for s in load("nack_envoy_stats.json")["stats"]
                       if not s.get("name", "").startswith("control_plane.")]}
    found = proxy_findings(CATALOG, None, envoy_state(stats, None), "revision canary")
    assert found[0].check == UNKNOWN
    assert "not connected" not in found[0].detail
    assert ("its Envoy is keeping no control_plane stats, so its ADS stream is not known; it "
            "was injected for revision canary") in found[0].detail


def test_lds_error_state_text_is_reported():
    listeners = {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                              "dynamic_listeners": [{"name": "0.0.0.0_8080", "error_state": {
                                  "details": "Error adding/updating listener(s) 0.0.0.0_8080: "
                                             "duplicate filter chain match",
                                  "last_update_attempt": "2026-01-01T00:00:00Z"}}]}]}
    stats = _stats_with(load("nack_envoy_stats.json"), "listener_manager.lds.update_rejected", 2)
    found = proxy_findings(CATALOG, _catalog("syncz_synced.json"),
                           envoy_state(stats, listeners))
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
    from kubectl_mesh.syncz import ProxySync
    return ProxySync(name=name, cluster_id="Kubernetes", proxy_type="sidecar",
                     proxy_version="1.40.0", istio_version="1.28.0", types=(),
                     has_subscriptions=True, istiod="istiod-1")


def test_verify_reports_pods_that_vanish_or_are_not_running_as_gone():
    from kubectl_mesh.errors import NotFoundError
    from kubectl_mesh.sync.probe import verify_proxies
    from kubectl_mesh.sync.verify import GONE

    listed = [_listed("a.ns"), _listed("b.ns")]
    session = _VanishingSession(NotFoundError('pods "a" not found'))
    found = verify_proxies(session, listed, {"a.ns": POD}, {}, concurrency=2, stderr=None)
    by_proxy = {f.proxy: f for f in found}
    assert by_proxy["a.ns"].check == GONE and "vanished while it was being verified" in \
        by_proxy["a.ns"].detail and 'pods "a" not found' in by_proxy["a.ns"].detail
    assert by_proxy["b.ns"].check == GONE and "istiod istiod-1 lists it, but there is no such " \
        "Running pod" in by_proxy["b.ns"].detail


def test_verify_unreachable_envoy_is_a_finding_but_rbac_fails_the_run():
    from kubectl_mesh.errors import ForbiddenError, UnreachableError
    from kubectl_mesh.sync.probe import verify_proxies
    from kubectl_mesh.sync.verify import UNREACHABLE

    pods = {"a.ns": POD}
    found = verify_proxies(_VanishingSession(UnreachableError("timed out")), [_listed("a.ns")],
                           pods, {}, concurrency=1, stderr=None)
    assert [f.check for f in found] == [UNREACHABLE]
    with pytest.raises(ForbiddenError):
        verify_proxies(_VanishingSession(ForbiddenError("no pods/portforward")),
                       [_listed("a.ns")], pods, {}, concurrency=1, stderr=None)


class _LaggingEnvoy:
    """Port-forwards whose Envoy says: connected, nothing rejected, CDS version `cds`."""

    def __init__(self, cds: str):
        self.cds = cds

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def stats(self, filter=None):  # noqa: A002 - Envoy's parameter name
        return {"stats": [{"name": "control_plane.connected_state", "value": 1},
                          {"name": "cluster_manager.cds.version_text", "value": self.cds}]}

    def admin(self, pod):
        return self


def _syncz_entry(cds_version: str) -> dict:
    nonce = cds_version + UUID
    return {"proxy": "a.ns", "resources": {URLS["CDS"]: {"sent": nonce, "acked": nonce}}}


class _Istiod:
    """An istiod whose syncz lists proxy a.ns with CDS sent at `cds_version` (or fails)."""

    name = "istiod-1"

    def __init__(self, cds_version: str | None):
        self.cds_version = cds_version
        self.asked: list = []

    def proxies(self, namespace=None):
        from kubectl_mesh.errors import UnreachableError

        self.asked.append(namespace)
        if self.cds_version is None:
            raise UnreachableError("istiod istio-system/istiod-1 did not answer within 5s")
        from kubectl_mesh.syncz import parse_syncz
        return parse_syncz([_syncz_entry(self.cds_version)], self.name)


def _verify_lagging(envoy_cds: str, istiod: _Istiod):
    from kubectl_mesh.sync.probe import verify_proxies
    from kubectl_mesh.syncz import parse_entry

    listed = parse_entry(_syncz_entry(OLD), "istiod-1")  # what the first syncz said
    found = verify_proxies(_LaggingEnvoy(envoy_cds), [listed], {"a.ns": POD},
                           {"istiod-1": istiod}, concurrency=1, stderr=None)
    # this Envoy keeps CDS and stream stats only: the other types are said to be unchecked
    [unchecked] = [f for f in found if f.severity == "info"]
    assert unchecked.detail.startswith("not checked: LDS, RDS, EDS (its Envoy keeps no such")
    return [f for f in found if f.severity != "info"]


def test_envoy_ahead_of_the_first_syncz_is_rechecked_not_lagging():
    """A push between reading syncz and asking the Envoy: syncz is read again (the proxy's
    namespace only) before a lag is claimed."""
    istiod = _Istiod(NEW)
    assert _verify_lagging(NEW, istiod) == [] and istiod.asked == ["ns"]


def test_real_lag_survives_the_recheck():
    [found] = _verify_lagging(OLD[:-1] + "1", _Istiod(OLD))
    assert found.check == LAGGING and found.type == "CDS"


def test_istiod_that_cannot_answer_the_recheck_is_a_warning_next_to_the_lag():
    from kubectl_mesh.sync.verify import UNREACHABLE

    found = _verify_lagging(NEW, _Istiod(None))
    assert [(f.check, f.severity) for f in found] == [(LAGGING, "error"),
                                                      (UNREACHABLE, WARNING_LEVEL)]
    assert found[1].detail.startswith("istiod istiod-1 did not answer again")
    assert "lag was not re-checked" in found[1].detail


def test_a_version_stat_the_proxy_does_not_keep_is_not_a_lag():
    """Istio's stats inclusion list may leave a stat out: no stat is not "Envoy has none"."""
    gw = _pushed("syncz_synced_after_nack.json", "istio-", CDS=NEW, LDS=NEW, RDS=NEW)
    stats = {"stats": [{"name": "control_plane.connected_state", "value": 1},
                       {"name": "listener_manager.lds.version_text", "value": ""}]}
    unchecked, lag = proxy_findings(gw.name, gw, envoy_state(stats, None))
    assert (lag.check, lag.type) == (LAGGING, "LDS") and "Envoy has none" in lag.detail
    # what it keeps no stats for is said, as information
    assert (unchecked.check, unchecked.severity) == ("UNCHECKED", "info")
    assert unchecked.detail.startswith("not checked: CDS, RDS, EDS (its Envoy keeps no such")
    assert "inclusionSuffixes: [update_rejected, version_text]" in unchecked.detail


UNKNOWN_TYPE_LINE = ("Failed to convert protobuf message to JSON string: INVALID_ARGUMENT: "
                     "could not find @type 'type.googleapis.com/stats.PluginConfig'")


class _EnvoyWithUnprintableListeners:
    """An Envoy that rejected listeners of a type its build does not know: its stats count
    the rejection, and /config_dump answers Envoy's one line of text instead of JSON (what
    an upstream Envoy does with real istiod's istio.stats filter, docs/real-istio.md)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def admin(self, pod):
        return self

    def stats(self, filter=None):  # noqa: A002 - Envoy's parameter name
        return {"stats": [{"name": "control_plane.connected_state", "value": 1},
                          {"name": "listener_manager.lds.update_rejected", "value": 3},
                          {"name": "listener_manager.lds.version_text", "value": ""}]}

    def config_dump(self, mask=None, **_):
        from kubectl_mesh.admin import NotJsonError
        raise NotJsonError(f"Envoy admin of {POD.ref} returned non-JSON for /config_dump "
                           f"(130 bytes): {UNKNOWN_TYPE_LINE}", said=UNKNOWN_TYPE_LINE)


def test_listeners_envoy_cannot_print_are_a_rejection_not_a_failed_run():
    """The listeners dump that would name the rejected listeners is text: --verify still
    reports LDS REJECTED (an error, not 'an earlier update'), quoting Envoy's line, instead
    of failing the whole run with the non-JSON error."""
    from kubectl_mesh.sync.probe import verify_proxies
    from kubectl_mesh.syncz import parse_entry

    listed = parse_entry({"proxy": "a.ns", "resources": {}}, "istiod-1")  # syncz: no error
    found = verify_proxies(_EnvoyWithUnprintableListeners(), [listed], {"a.ns": POD}, {},
                           concurrency=1, stderr=None)
    lds = [f for f in found if f.type == "LDS"]
    assert [(f.check, f.severity) for f in lds] == [(REJECTED, "error")]
    assert "update_rejected=3" in lds[0].detail
    assert "Envoy cannot print the rejected listeners" in lds[0].detail
    assert "could not find @type 'type.googleapis.com/stats.PluginConfig'" in lds[0].detail


def test_unchecked_proxies_are_one_line_not_a_row_each():
    from kubectl_mesh.sync.command import write_result
    from kubectl_mesh.sync.verify import UNCHECKED, Finding
    import datetime
    import io

    detail = "not checked: RDS, EDS, ADS stream (its Envoy keeps no such stats; ...)"
    findings = [Finding(f"p{i}.ns", UNCHECKED, detail, severity="info") for i in range(3)]
    out, err = io.StringIO(), io.StringIO()
    write_result(out, err, "short", [], findings, datetime.datetime.now(datetime.timezone.utc))
    assert "UNCHECKED" not in out.getvalue()
    lines = err.getvalue().splitlines()
    assert lines[0] == "verify: checked 0 proxies against their own Envoy: no problems"
    assert lines[1].startswith("verify: not checked on 3 of 3 proxies (p0.ns, ...): RDS, EDS, "
                               "ADS stream – their Envoy keeps no such stats")
    data = io.StringIO()
    write_result(data, io.StringIO(), "json", [], findings,
                 datetime.datetime.now(datetime.timezone.utc))
    assert '"severity": "info"' in data.getvalue()
