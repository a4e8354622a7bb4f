"""Sync-status model: status words, ages, both syncz shapes, merging replicas, --wait."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kubectl_mesh.errors import BadInputError
from kubectl_mesh.syncz import (
    ERROR, IGNORED, NOT_SENT, STALE, SYNCED, all_synced, format_age, merge_replicas,
    not_synced, notes, parse_entry, parse_go_time, parse_syncz, shown_types, status_of, table,
    write_status,
)

PAYLOADS = Path(__file__).parent / "golden" / "_payloads"
NOW = datetime(2026, 11, 26, 3, 30, tzinfo=timezone.utc)
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"


def load(name):
    return json.loads((PAYLOADS / name).read_text())


@pytest.mark.parametrize("seconds,text", [
    (-5, "<invalid>"), (-0.5, "0s"), (0, "0s"), (12, "12s"), (119, "119s"), (120, "2m"),
    (150, "2m30s"), (599, "9m59s"), (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"),
    (3 * 3600 + 600, "3h10m"), (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"),
    (52 * 3600, "2d4h"), (8 * 86400, "8d"), (400 * 86400, "400d"), (730 * 86400, "2y"),
    (731 * 86400, "2y1d"), (9 * 365 * 86400, "9y"),
], ids=lambda v: str(v))
def test_format_age_like_kubectl(seconds, text):
    assert format_age(seconds) == text


@pytest.mark.parametrize("text,expected", [
    ("2026-11-26T03:27:30.123456789Z", datetime(2026, 11, 26, 3, 27, 30, 123456, timezone.utc)),
    ("2026-11-26T03:27:30Z", datetime(2026, 11, 26, 3, 27, 30, tzinfo=timezone.utc)),
    ("2026-11-26T04:27:30.5+01:00", datetime(2026, 11, 26, 3, 27, 30, 500000, timezone.utc)),
    ("0001-01-01T00:00:00Z", None), ("", None), (None, None), ("yesterday", None),
])
def test_parse_go_time(text, expected):
    assert parse_go_time(text) == expected


@pytest.mark.parametrize("sent,acked,err,subscribed,status", [
    ("n1", "n1", None, True, SYNCED), ("n2", "n1", None, True, STALE),
    ("n2", None, None, True, STALE), (None, None, None, True, NOT_SENT),
    ("n2", "n1", "NACK text", True, ERROR), (None, None, None, False, IGNORED),
])
def test_status_words(sent, acked, err, subscribed, status):
    assert status_of(sent, acked, err, subscribed) == status


def test_new_shape_types_and_ages():
    proxies = {p.name: p for p in parse_syncz(load("istiod-single.json"), "istiod-x")}
    webapp = proxies["webapp-6c8d7f9b5-q2x7z.istioinaction"]
    assert [(t.type, t.status) for t in webapp.types] == [
        ("CDS", SYNCED), ("LDS", SYNCED), ("EDS", STALE), ("RDS", ERROR), ("ECDS", IGNORED),
        ("SDS", IGNORED), ("NDS", IGNORED), ("WDS", IGNORED), ("WADS", IGNORED)]
    assert webapp.type("RDS").label(NOW) == "ERROR (12s)"
    assert "Duplicate entry of domain" in webapp.type("RDS").last_error
    gw = proxies["istio-ingressgateway-9d274d5fd8-ebef4.istio-system"]
    assert gw.type("EDS").label(NOW) == "NOT SENT"  # Go zero time: no age
    assert gw.type("LDS").label(NOW) == "STALE (3s)"
    assert gw.proxy_type == "router" and gw.version == "1.26.2" and gw.istiod == "istiod-x"


def test_flat_shape_cannot_say_ignored_or_error():
    entry = {"proxy": "a.ns", "cluster_sent": "1", "cluster_acked": "1", "route_sent": "2",
             "route_acked": "1"}
    p = parse_entry(entry)
    assert [(t.type, t.status) for t in p.types] == [
        ("CDS", SYNCED), ("LDS", NOT_SENT), ("EDS", NOT_SENT), ("RDS", STALE),
        ("ECDS", NOT_SENT)]
    assert p.type("CDS").label(NOW) == "SYNCED"  # no sentTime, no age


def test_resources_win_over_flat_fields_and_unknown_types_kept():
    entry = {"proxy": "a.ns", "cluster_sent": "old", "cluster_acked": "old",
             "resources": {CDS: {"sent": "new", "acked": "old"},
                           "istio.io/debug/custom": {"sent": "x", "acked": "x"}}}
    p = parse_entry(entry)
    assert p.type("CDS").status == STALE and p.type("LDS").status == IGNORED
    assert p.type("istio.io/debug/custom").status == SYNCED


def test_bad_payloads():
    with pytest.raises(BadInputError, match="not a JSON array"):
        parse_syncz({"proxy": "a"}, "istiod-1")
    assert parse_syncz(None) == []
    assert [p.name for p in parse_syncz([{"proxy": "a.ns"}, {"cluster_id": "x"}, "junk"])] == ["a.ns"]


def test_merge_keeps_most_recent_replica_and_notes_it():
    merged = merge_replicas({"istiod-b": load("istiod-b.json"), "istiod-a": load("istiod-a.json")})
    by_name = {p.name: p for p in merged}
    assert list(by_name) == sorted(by_name)
    catalog = by_name["catalog-5c99bc2986-ed8af.istioinaction"]
    assert (catalog.istiod, catalog.also_listed_by) == ("istiod-b", ("istiod-a",))
    assert catalog.type("CDS").status == SYNCED  # not istiod-a's stale, never-acked stream
    assert by_name["ratings-7b9c5d6f4-p8k2m.bookinfo"].istiod == "istiod-a"
    assert notes(merged) == ["catalog-5c99bc2986-ed8af.istioinaction is also listed by istiod-a "
                             "(an old connection?); showing istiod-b, the most recent activity"]


def test_wait_predicate():
    single = parse_syncz(load("istiod-single.json"))
    assert not all_synced(single)
    assert {p.name.split("-")[0] for p in not_synced(single)} == {"istio", "webapp"}
    catalog = [p for p in single if p.name.startswith("catalog")]
    assert all_synced(catalog)  # ECDS/WDS/WADS IGNORED do not block
    assert not all_synced([])  # nothing selected yet: keep waiting
    # NOT SENT on a subscribed type is not synced; on an older istiod it cannot be told apart.
    pending = parse_entry({"proxy": "p.ns", "resources": {CDS: {"sentTime": "0001-01-01T00:00:00Z"}}})
    assert not pending.synced
    old = parse_entry({"proxy": "o.ns", "cluster_sent": "1", "cluster_acked": "1"})
    assert old.synced


def test_ignored_columns_dropped_but_kept_when_any_subscribed():
    single = parse_syncz(load("istiod-single.json"))
    assert shown_types(single) == ["CDS", "LDS", "EDS", "RDS"]
    headers, rows = table(single, NOW)
    assert headers == ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD", "VERSION"]
    merged = merge_replicas({"a": load("istiod-a.json"), "b": load("istiod-b.json")})
    assert "ECDS" in shown_types(merged)
    headers, rows = table(merged, NOW)
    catalog = dict(zip(headers, rows[0]))
    assert catalog["ECDS"] == IGNORED and catalog["CDS"] == "SYNCED (10s)"


def test_notes_carry_the_nack_message():
    lines = notes(parse_syncz(load("istiod-single.json")))
    assert lines == ["webapp-6c8d7f9b5-q2x7z.istioinaction rejected RDS (NACK): Only unique "
                     "values for domains are permitted. Duplicate entry of domain "
                     "catalog.istioinaction.svc.cluster.local in route http.8080"]


def test_write_status_rejects_unknown_format():
    from kubectl_mesh.errors import UsageError
    with pytest.raises(UsageError):
        write_status(io.StringIO(), "table", [], NOW)


def test_sds_and_nds_have_columns_and_unnamed_types_a_note():
    """Real syncz lists every watched type: SDS (certificates) and NDS (pilot-agent's DNS name
    table) as well as CDS..ECDS; a type with no column that is not in sync is said."""
    from kubectl_mesh.syncz import render
    entry = {"proxy": "p.ns", "resources": {
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret": {"sent": "s", "acked": "s"},
        "type.googleapis.com/istio.networking.nds.v1.NameTable": {"sent": "n2", "acked": "n1"},
        "type.googleapis.com/istio.future.v1.Thing": {"sent": "t2", "acked": "t1"}}}
    proxy = parse_entry(entry)
    assert (proxy.type("SDS").status, proxy.type("NDS").status) == (SYNCED, STALE)
    assert render.shown_types([proxy]) == ["SDS", "NDS"]
    assert render.notes([proxy]) == [
        "p.ns: type.googleapis.com/istio.future.v1.Thing is STALE (a type with no column)"]
