"""Envoy's matching rules: request parsing, domain search precedence, route matching."""

from __future__ import annotations

import pytest

from kubectl_mesh.errors import UsageError
from kubectl_mesh.trace import parse_header, parse_request
from kubectl_mesh.trace.match import find_virtual_host, header_matches, route_matches, routing_host


def test_parse_request_defaults_and_ports():
    r = parse_request("http://Catalog.Istioinaction.io/items?x=1")
    assert (r.scheme, r.host, r.port, r.path, r.path_only, r.method) == (
        "http", "catalog.istioinaction.io", 80, "/items?x=1", "/items", "GET")
    assert parse_request("https://a.example.com/").port == 443
    assert parse_request("a.example.com").path == "/"  # scheme optional
    r = parse_request("http://a.example.com:8080/x", ["Host: b.example.com", "X-User:alice"], "post")
    # Host header overrides the routing host but not the port connected to
    assert (r.host, r.port, r.method, r.header("x-user")) == ("b.example.com", 8080, "POST", "alice")
    assert parse_request("http://a.example.com:80/").host == "a.example.com"  # default port left out
    assert parse_request("http://a.example.com:81/").host == "a.example.com:81"


@pytest.mark.parametrize("bad", ["ftp://x/", "http:///nohost"])
def test_parse_request_rejects(bad):
    with pytest.raises(UsageError):
        parse_request(bad)


def test_parse_header_needs_colon():
    assert parse_header("X-A: b:c") == ("x-a", "b:c")
    with pytest.raises(UsageError):
        parse_header("novalue")


VHOSTS = [
    {"name": "star", "domains": ["*"]},
    {"name": "prefix", "domains": ["api.*"]},
    {"name": "short-suffix", "domains": ["*.com"]},
    {"name": "long-suffix", "domains": ["*.example.com"]},
    {"name": "exact", "domains": ["api.example.com", "api.example.com:8080"]},
    {"name": "portwild", "domains": ["shop.example.org:*"]},
]


@pytest.mark.parametrize("host,expected,rule", [
    ("api.example.com", "exact", "exact"),  # exact beats every wildcard
    ("web.example.com", "long-suffix", "suffix wildcard"),  # longest suffix first
    ("web.other.com", "short-suffix", "suffix wildcard"),
    ("api.example.net", "prefix", "prefix wildcard"),  # suffix wildcards beat prefix ones
    ("unknown.net", "star", "catch-all"),
    ("api.example.com:8080", "exact", "exact"),  # domains with ports match hosts with ports
    ("api.example.com:9090", "prefix", "prefix wildcard"),  # ... only the same port
    ("shop.example.org:80", "portwild", "prefix wildcard"),
    ("example.com", "short-suffix", "suffix wildcard"),
], ids=lambda x: str(x))
def test_domain_precedence(host, expected, rule):
    m = find_virtual_host(VHOSTS, host)
    assert (VHOSTS[m.index]["name"], m.rule) == (expected, rule)


def test_wildcard_never_matches_empty_and_no_star_means_none():
    vhosts = [{"name": "a", "domains": ["*.foo.com", "bar.*"]}]
    assert find_virtual_host(vhosts, ".foo.com") is None
    assert find_virtual_host(vhosts, "bar.") is None
    assert find_virtual_host(vhosts, "x.foo.com").index == 0


def test_routing_host_strips_port_only_when_configured():
    assert routing_host("A.b:8080", {}) == "a.b:8080"
    assert routing_host("a.b:8080", {"ignore_port_in_host_matching": True}) == "a.b"
    assert routing_host("a.b:8080", {}, {"strip_any_host_port": True}) == "a.b"
    assert routing_host("a.b:8080", {}, {"strip_matching_host_port": True}, 8080) == "a.b"
    assert routing_host("a.b:8080", {}, {"strip_matching_host_port": True}, 80) == "a.b:8080"


def _req(path="/", headers=(), method="GET"):
    return parse_request("http://h" + path, list(headers), method)


@pytest.mark.parametrize("match,path,ok", [
    ({"prefix": "/api"}, "/api/v1", True),
    ({"prefix": "/api"}, "/API/v1", False),
    ({"prefix": "/api", "case_sensitive": False}, "/API/v1", True),
    ({"path": "/items"}, "/items?x=1", True),  # query string removed for path
    ({"path": "/items"}, "/items/1", False),
    ({"path_separated_prefix": "/get"}, "/get/x", True),
    ({"path_separated_prefix": "/get"}, "/get", True),
    ({"path_separated_prefix": "/get"}, "/getter", False),
    ({"safe_regex": {"regex": "/v[0-9]+/.*"}}, "/v2/items", True),
    ({"safe_regex": {"regex": "/v[0-9]+"}}, "/v2/items", False),  # full match, not search
    ({"prefix": "/", "query_parameters": [{"name": "q", "string_match": {"exact": "1"}}]},
     "/?q=1", True),
    ({"prefix": "/", "query_parameters": [{"name": "q", "present_match": True}]}, "/", False),
], ids=lambda x: str(x))
def test_route_path_matching(match, path, ok):
    assert route_matches(match, _req(path))[0] is ok


@pytest.mark.parametrize("matcher,value,ok", [
    ({"name": "x", "string_match": {"exact": "a"}}, "a", True),
    ({"name": "x", "string_match": {"exact": "a"}}, "b", False),
    ({"name": "x", "string_match": {"exact": "A", "ignore_case": True}}, "a", True),
    ({"name": "x", "exact_match": "a"}, "a", True),
    ({"name": "x", "prefix_match": "ab"}, "abc", True),
    ({"name": "x", "string_match": {"suffix": "bc"}}, "abc", True),
    ({"name": "x", "string_match": {"prefix": "zz"}}, "abc", False),
    ({"name": "x", "safe_regex_match": {"regex": "a.c"}}, "abc", True),
    ({"name": "x", "string_match": {"safe_regex": {"regex": "a"}}}, "abc", False),
    ({"name": "x", "present_match": True}, "v", True),
    ({"name": "x", "present_match": True}, None, False),
    ({"name": "x", "present_match": False}, None, True),
    ({"name": "x", "string_match": {"exact": "a"}}, None, False),
    # invert: Istio's withoutHeaders – an absent header matches an inverted value matcher
    ({"name": "x", "string_match": {"exact": "a"}, "invert_match": True}, "a", False),
    ({"name": "x", "string_match": {"exact": "a"}, "invert_match": True}, "b", True),
    ({"name": "x", "string_match": {"exact": "a"}, "invert_match": True}, None, True),
], ids=lambda x: str(x))
def test_header_matchers(matcher, value, ok):
    assert header_matches(matcher, value) is ok


def test_route_headers_and_method_pseudo_header():
    match = {"prefix": "/", "headers": [{"name": ":method", "string_match": {"exact": "POST"}},
                                        {"name": "x-user", "string_match": {"exact": "alice"}}]}
    assert route_matches(match, _req("/", ["x-user:alice"], "POST"))[0]
    ok, why = route_matches(match, _req("/", ["x-user:bob"], "POST"))
    assert not ok and why == "header x-user=alice"
    assert not route_matches(match, _req("/", ["x-user:alice"], "GET"))[0]
