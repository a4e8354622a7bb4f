"""Listings of one pod and of many (majority level, differing pods called out)."""

from __future__ import annotations

from kubectl_mesh.loglevel.listing import Listing


def test_one_pod_is_logger_level_sorted():
    listing = Listing.of([("a.ns", {"router": "info", "http": "debug"})])
    assert listing.table() == (["LOGGER", "LEVEL"], [["http", "debug"], ["router", "info"]])
    assert listing.data() == {"pods": ["a.ns"], "loggers": [
        {"name": "http", "level": "debug", "differing": {}},
        {"name": "router", "level": "info", "differing": {}}]}


def test_many_pods_call_out_the_ones_that_differ():
    listing = Listing.of([("a.ns", {"http": "warning", "router": "info"}),
                          ("b.ns", {"http": "debug", "router": "info"}),
                          ("c.ns", {"http": "warning", "router": "info"})])
    headers, rows = listing.table()
    assert headers == ["LOGGER", "LEVEL", "DIFFERING PODS"]
    assert rows == [["http", "warning", "b.ns=debug"], ["router", "info", ""]]
    assert listing.differing_loggers == ["http"]
    assert listing.summary() == "1 of 2 loggers differ between the 3 pods: http"
    assert listing.data()["loggers"][0] == {"name": "http", "level": "warning",
                                            "differing": {"b.ns": "debug"}}


def test_tie_takes_the_first_pods_level_and_missing_logger_shows_dash():
    listing = Listing.of([("a.ns", {"http": "debug", "new": "info"}), ("b.ns", {"http": "info"})])
    assert listing.table()[1] == [["http", "debug", "b.ns=info"], ["new", "info", "b.ns=-"]]


def test_agreeing_pods_summary():
    same = {"http": "info"}
    assert Listing.of([("a.ns", same), ("b.ns", same)]).summary() == \
        "all 2 pods have the same levels"


def test_wide_has_a_column_per_pod_with_its_own_level():
    listing = Listing.of([("a.ns", {"http": "debug", "admin": "warning"}),
                          ("b.ns", {"http": "info", "admin": "warning"}),
                          ("c.ns", {"http": "info", "admin": "warning"})])
    headers, rows = listing.table(wide=True)
    assert headers == ["LOGGER", "a.ns", "b.ns", "c.ns"]
    assert rows == [["admin", "warning", "warning", "warning"], ["http", "debug", "info", "info"]]
