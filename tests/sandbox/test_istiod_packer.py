"""The sandbox istiod converts a resource to protobuf once per distinct content (`Packer`), so a
push that changes little does not parse thousands of unchanged virtual hosts again."""

from __future__ import annotations

from sandbox.istiod import resources
from sandbox.istiod.routes import ROUTE_TYPE


def _route(name: str, hosts: int = 3) -> dict:
    return {"name": name, "virtual_hosts": [
        {"name": f"h{i}:80", "domains": [f"h{i}"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": f"outbound|80||h{i}", "timeout": "0s"}}]}
        for i in range(hosts)]}


def _counting(monkeypatch) -> list:
    calls = []
    real = resources.to_message

    def counted(type_url, resource):
        calls.append(resource["name"])
        return real(type_url, resource)

    monkeypatch.setattr(resources, "to_message", counted)
    return calls


def test_equal_content_is_parsed_once(monkeypatch):
    calls = _counting(monkeypatch)
    packer = resources.Packer()
    first = packer.to_any(ROUTE_TYPE, _route("http.8080"))
    again = packer.to_any(ROUTE_TYPE, _route("http.8080"))  # an equal dict, not the same one
    assert again is first and calls == ["http.8080"]
    assert first == resources.to_any(ROUTE_TYPE, _route("http.8080"))


def test_changed_content_is_parsed_anew(monkeypatch):
    calls = _counting(monkeypatch)
    packer = resources.Packer()
    a = packer.to_any(ROUTE_TYPE, _route("http.8080", hosts=3))
    b = packer.to_any(ROUTE_TYPE, _route("http.8080", hosts=4))
    assert a != b and calls == ["http.8080", "http.8080"]


def test_least_recently_used_entries_go_first(monkeypatch):
    calls = _counting(monkeypatch)
    packer = resources.Packer(limit=2)
    for name in ("a", "b", "a", "c", "a", "b"):
        packer.to_any(ROUTE_TYPE, _route(name))
    # a stays (used again before c came); b was dropped for c, so it is parsed again
    assert calls == ["a", "b", "c", "b"]
