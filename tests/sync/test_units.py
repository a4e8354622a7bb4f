"""Scope, --wait's loop, istiod discovery errors, and --diff's normalisation."""

from __future__ import annotations

import io

import pytest

from kubectl_mesh.errors import NotFoundError, UnreachableError
from kubectl_mesh.sync import diff
from kubectl_mesh.sync.istiod import find_istiods, istiod_selector
from kubectl_mesh.sync.scope import scope_for
from kubectl_mesh.sync.wait import Snapshot, wait_for_sync

from .cases import load, proxies


@pytest.mark.parametrize("ns,all_ns,ids,proxy,expected", [
    (None, False, None, "a.app", True),
    ("app", False, None, "a.app", True),
    ("app", False, None, "a.other", False),
    ("app", True, None, "a.other", True),
    ("app", False, ["a.other"], "a.other", True),
    (None, False, ["a.other"], "b.other", False),
    ("app", False, None, "a.b.app", True),
], ids=["all", "ns-hit", "ns-miss", "A-wins", "target-wins", "target-miss", "dotted-pod"])
def test_scope(ns, all_ns, ids, proxy, expected):
    assert scope_for(ns, all_ns, ids).matches(proxy) is expected


class FakeApi:
    def __init__(self, pods):
        self.pods, self.calls = pods, []

    def list_pods(self, namespace=None, label_selector=None, field_selector=None):
        self.calls.append((namespace, label_selector))
        return self.pods


def _pod(name, phase="Running"):
    return {"metadata": {"name": name, "namespace": "istio-system"},
            "spec": {"containers": [{"name": "discovery"}]}, "status": {"phase": phase}}


def test_find_istiods_uses_label_and_revision():
    api = FakeApi([_pod("istiod-b"), _pod("istiod-a"), _pod("istiod-c", "Pending")])
    assert [p.name for p in find_istiods(api, "istio-system", "canary")] == ["istiod-a", "istiod-b"]
    assert api.calls == [("istio-system", "app=istiod,istio.io/rev=canary")]
    assert istiod_selector(None) == "app=istiod"


def test_no_istiod_says_where_it_looked():
    with pytest.raises(NotFoundError) as e:
        find_istiods(FakeApi([]), "mesh", None)
    assert "namespace mesh" in str(e.value) and "app=istiod" in str(e.value)
    assert "--istio-namespace" in str(e.value)


def test_only_pending_istiod_is_unreachable():
    with pytest.raises(UnreachableError, match="istiod-c: Pending"):
        find_istiods(FakeApi([_pod("istiod-c", "Pending")]), "istio-system")


def test_wait_returns_when_synced_and_reports_progress():
    stale, synced = proxies("syncz_stale.json"), proxies("syncz_synced.json")
    polls = iter([Snapshot(stale), Snapshot(stale), Snapshot(synced), Snapshot(synced)])
    clock = iter([0, 0.1, 0.6, 1.1, 2.2])
    err = io.StringIO()
    done, snap = wait_for_sync(lambda: next(polls), timeout=10, stderr=err,
                               clock=lambda: next(clock), sleep=lambda s: None)
    assert done and snap.proxies == synced
    lines = err.getvalue().splitlines()
    assert "3/4 proxies SYNCED" in lines[0] and "RDS STALE" in lines[0]
    assert lines[-1] == "sync: 4/4 proxies SYNCED"


def test_wait_settles_so_a_push_just_after_the_first_synced_poll_is_waited_for():
    """Right after `kubectl apply`, istiod may not have pushed yet: everything is SYNCED on
    the old config. --wait must not stop there if a push follows within SETTLE."""
    import dataclasses
    synced = proxies("syncz_synced.json")
    stale = proxies("syncz_stale.json")
    pushed = [dataclasses.replace(p, types=tuple(dataclasses.replace(
        t, sent=(t.sent or "") + "-2", acked=(t.sent or "") + "-2") for t in p.types))
        for p in synced]
    polls = iter([Snapshot(synced), Snapshot(stale), Snapshot(pushed), Snapshot(pushed)])
    clock = iter([0, 0.0, 0.5, 1.0, 2.1])
    done, snap = wait_for_sync(lambda: next(polls), timeout=10, clock=lambda: next(clock),
                               sleep=lambda s: None)
    assert done and snap.proxies == pushed  # not the first, pre-push SYNCED poll
    # SYNCED once and then at the deadline: done (settling is within the timeout).
    done, _ = wait_for_sync(lambda: Snapshot(synced), timeout=0.5,
                            clock=iter([0, 0, 0.6]).__next__, sleep=lambda s: None)
    assert done


def test_wait_times_out_and_counts_unconnected_pods():
    synced = proxies("syncz_synced.json")
    t = iter(range(100))
    done, snap = wait_for_sync(lambda: Snapshot(synced, ("new-pod.app",)), timeout=3,
                               clock=lambda: next(t), sleep=lambda s: None)
    assert not done
    assert "4/5 proxies SYNCED" in snap.summary() and "new-pod.app (not connected" in snap.summary()


def test_empty_selection_is_not_done():
    assert not Snapshot([]).done


def test_diff_strips_versions_and_sorts():
    istiod = load("synced_istiod_dump.json")
    envoy = load("synced_envoy_dump.json")
    for cfg in envoy["configs"]:  # reorder and change versions/times: still a match
        for key in ("dynamic_active_clusters", "dynamic_route_configs", "dynamic_listeners"):
            if key in cfg:
                cfg[key].reverse()
                for item in cfg[key]:
                    item["version_info"] = "other"
                    item["last_updated"] = "2030-01-01T00:00:00Z"
    assert all(d.match for d in diff.compare(istiod, envoy))
    # one changed route timeout is a Routes difference, and only that
    route = next(c for c in envoy["configs"] if "dynamic_route_configs" in c)
    route["dynamic_route_configs"][0]["route_config"]["name"] += "-x"
    result = {d.section: d.match for d in diff.compare(istiod, envoy)}
    assert result == {"Clusters": True, "Listeners": True, "Routes": False}


def test_wait_rides_out_a_failed_poll():
    synced = proxies("syncz_synced.json")
    polls = iter([Snapshot((), error="istiod x did not answer"), Snapshot(synced),
                  Snapshot(synced)])
    err = io.StringIO()
    done, _ = wait_for_sync(lambda: next(polls), timeout=10, stderr=err,
                            clock=iter([0, 0, 1, 2.5]).__next__, sleep=lambda s: None)
    assert done and "retrying: istiod x did not answer" in err.getvalue()


def test_diff_compares_protojson_spellings_where_snake_from_camel_is_ambiguous():
    """istiod writes camelCase (protojson), Envoy snake_case: `proxy100Continue` is
    `proxy_100_continue` but `http2ProtocolOptions` is `http2_protocol_options`, and keys of
    Struct values (a transport socket match's `tlsMode`) are written verbatim by both."""
    from kubectl_mesh.configdump.keys import camel
    from kubectl_mesh.sync import diff as diffmod

    def dump(cluster, kind="dynamic_active_clusters"):
        return {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                             kind: [{"cluster": cluster}]}]}

    envoy = {"name": "outbound|80||a", "http2_protocol_options": {},
             "transport_socket_matches": [{"name": "tlsMode-istio", "match": {"tlsMode": "istio"}}],
             "upstream_http_protocol_options": {"proxy_100_continue": True},
             "metadata": {"filter_metadata": {"istio": {"some_key": "v"}}}}
    istiod = {"name": "outbound|80||a", "http2ProtocolOptions": {},
              "transportSocketMatches": [{"name": "tlsMode-istio", "match": {"tlsMode": "istio"}}],
              "upstreamHttpProtocolOptions": {"proxy100Continue": True},
              "metadata": {"filterMetadata": {"istio": {"some_key": "v"}}}}
    [clusters, *_] = diffmod.compare(dump(istiod, "dynamicActiveClusters"), dump(envoy))
    assert clusters.match, clusters.diff
    assert camel("proxy_100_continue") == "proxy100Continue"
    assert camel("envoy.filters.network.http_connection_manager") == \
        "envoy.filters.network.http_connection_manager"  # a map key, never renamed
    changed = dict(envoy, upstream_http_protocol_options={"proxy_100_continue": False})
    [clusters, *_] = diffmod.compare(dump(istiod, "dynamicActiveClusters"), dump(changed))
    assert not clusters.match and '+      "proxy100Continue": false' in clusters.diff


# ---- revision tags ---------------------------------------------------------------------------


class _Webhooks:
    """An API whose MutatingWebhookConfigurations are `hooks` (or that refuses to list them)."""

    def __init__(self, hooks=None, forbidden=False):
        self.hooks, self.forbidden, self.selectors = hooks or [], forbidden, []

    def list_resource(self, resource, namespace=None, *, label_selector=None,
                      field_selector=None):
        from kubectl_mesh.errors import ForbiddenError
        assert resource == "mutatingwebhookconfigurations"
        self.selectors.append(label_selector)
        if self.forbidden:
            raise ForbiddenError("cannot list mutatingwebhookconfigurations")
        tag = label_selector.split("=", 1)[1]
        return [h for h in self.hooks if h["metadata"]["labels"].get("istio.io/tag") == tag]


def _hook(tag, rev):
    return {"metadata": {"name": f"istio-revision-tag-{tag}",
                         "labels": {"istio.io/tag": tag, "istio.io/rev": rev}}}


def test_a_revision_tag_resolves_to_its_webhooks_revision():
    import io

    from kubectl_mesh.sync.revisions import resolve_revision
    api, err = _Webhooks([_hook("prod", "1-28"), _hook("canary", "1-29")]), io.StringIO()
    assert resolve_revision(api, "prod", err) == "1-28"
    assert api.selectors == ["istio.io/tag=prod"]
    assert "revision tag prod → revision 1-28" in err.getvalue()
    assert resolve_revision(api, "1-28") == "1-28"  # no tag of that name: a revision
    assert resolve_revision(_Webhooks(forbidden=True), "prod") == "prod"
    assert resolve_revision(api, None) is None


def test_a_tag_pointing_at_two_revisions_is_bad_input():
    from kubectl_mesh.errors import BadInputError
    from kubectl_mesh.sync.revisions import resolve_revision
    api = _Webhooks([_hook("prod", "1-28"), _hook("prod", "1-29")])
    with pytest.raises(BadInputError, match="points at several revisions"):
        resolve_revision(api, "prod")


class _UrlWebhooks:
    def __init__(self, hooks):
        self.hooks, self.selectors = hooks, []

    def list_resource(self, resource, namespace=None, *, label_selector=None,
                      field_selector=None):
        self.selectors.append(label_selector)
        return [] if label_selector.startswith("istio.io/tag=") else self.hooks


@pytest.mark.parametrize("url,address", [
    ("https://istiod.example.com:15012/inject", "istiod.example.com:15012"),
    ("https://istiod.example.com/inject", "istiod.example.com:443"),
    ("https://[fd00::1]:15012/inject", "[fd00::1]:15012"),
], ids=["port", "default-443", "ipv6"])
def test_webhook_injection_url_gives_the_xds_address(url, address):
    from kubectl_mesh.sync.revisions import webhook_xds_address
    api = _UrlWebhooks([{"metadata": {"name": "b"}, "webhooks": [{"clientConfig": {
        "service": {"name": "istiod"}}}]},
        {"metadata": {"name": "a"}, "webhooks": [{"clientConfig": {"url": url}}]}])
    assert webhook_xds_address(api, None) == ("a", address)
    # no --revision: the `default` tag's revision, else `default`; tag webhooks left out
    assert api.selectors == ["istio.io/tag=default", "istio.io/rev=default,!istio.io/tag"]
    assert webhook_xds_address(_UrlWebhooks([{"metadata": {"name": "b"}, "webhooks": [
        {"clientConfig": {"service": {"name": "istiod"}}}]}]), "1-28") is None


def _cluster_dump(names, timeout_of=lambda name: "1s") -> dict:
    return {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                         "dynamicActiveClusters": [
                             {"cluster": {"name": n, "connectTimeout": timeout_of(n),
                                          "type": "EDS", "edsClusterConfig": {"edsConfig": {
                                              "ads": {}, "resourceApiVersion": "V3"}}}}
                             for n in names]}]}


def test_diff_of_a_large_dump_hands_difflib_only_the_differing_middle(monkeypatch):
    """Thousands of clusters with one changed: the unified diff names the right lines (as
    difflib does on the whole text), and difflib's matcher, quadratic in repeated lines
    (~90 s for a real 2000-Service mesh), is given the changed line and its context only."""
    import difflib
    names = [f"outbound|80||svc-{i}.bench.svc.cluster.local" for i in range(3000)]
    istiod = _cluster_dump(names)
    envoy = _cluster_dump(names, lambda n: "5s" if n == names[2000] else "1s")
    seen = []
    real = difflib.unified_diff

    def recording(a, b, *args, **kwargs):
        seen.append((len(a), len(b)))
        return real(a, b, *args, **kwargs)

    monkeypatch.setattr(difflib, "unified_diff", recording)
    clusters = diff.compare(istiod, envoy)[0]
    assert not clusters.match and seen and max(max(s) for s in seen) <= 7
    monkeypatch.setattr(difflib, "unified_diff", real)
    whole = real(diff._text(diff.clusters(istiod)), diff._text(diff.clusters(envoy)),
                 fromfile="Istiod Clusters", tofile="Envoy Clusters", n=3)
    assert clusters.diff == "".join(whole)
    assert '-    "connectTimeout": "1s",\n+    "connectTimeout": "5s",\n' in clusters.diff
    # alike: no diff, and difflib is not asked at all
    seen.clear()
    monkeypatch.setattr(difflib, "unified_diff", recording)
    assert all(d.match for d in diff.compare(istiod, _cluster_dump(names))) and not seen
