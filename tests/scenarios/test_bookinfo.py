"""Istio's bookinfo sample as a user applies it, on the sandbox (either backend): the YAML of
the Istio module (`python -m sandbox up --scenario bookinfo`: bookinfo.yaml and
bookinfo-gateway.yaml, the default namespace labelled for injection), bookinfo's images run
as the sandbox's bookinfo services (sandbox/bookinfo.py), `/productpage` through the ingress
gateway, and `kubectl mesh` on the sample's networking files."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from sandbox.samples import bookinfo_file, resolve_scenario
from sandbox.testing import MeshCli, RunningSandbox, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
APPS = ("details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3", "productpage-v1")
V1_CLUSTER = "outbound|9080|v1|reviews.default.svc.cluster.local"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, backend):
    state = tmp_path_factory.mktemp("bookinfo") / "state"
    scenario = resolve_scenario("bookinfo", state)
    with RunningSandbox(state, scenarios=[scenario], backend=backend, timeout=120) as sb:
        yield sb


@pytest.fixture(scope="module")
def mesh(sandbox) -> MeshCli:
    return MeshCli(sandbox)


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def productpage(sandbox) -> tuple[int, str]:
    gateway = sandbox.pod_ip("istio-system", "app=istio-ingressgateway")
    return get(f"http://{gateway}:8080/productpage")


def reviews_version(page: str) -> str:
    """Which reviews pod served the page, as bookinfo shows it (`reviews.podname`)."""
    m = re.search(r"Reviews served by: reviews-(v\d)-", page)
    return m.group(1) if m else ""


def ratings_requests(sandbox) -> int:
    log = sandbox.kubectl("logs", "deploy/ratings-v1", "-c", "ratings", "--tail=-1").stdout
    return log.count("GET /ratings/0 ")


def test_bookinfo_s_pods_run_injected_and_ready(sandbox):
    pods = sandbox.pods("default")
    deployments = {p["metadata"]["name"].rsplit("-", 2)[0]: p for p in pods}
    assert sorted(deployments) == sorted(APPS)
    for name, pod in deployments.items():
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"]
        assert ready == "True", (name, pod["status"])
        containers = [c["name"] for c in pod["spec"]["containers"]
                      + pod["spec"].get("initContainers", [])]
        assert "istio-proxy" in containers, (name, containers)  # the injected namespace
        assert pod["spec"]["containers"][0]["image"].split("/")[-1].startswith(
            f"examples-bookinfo-{name.rsplit('-', 1)[0]}-")


def test_productpage_through_the_gateway_holds_details_and_every_reviews_version(sandbox):
    seen: dict[str, str] = {}

    def all_versions():
        status, page = productpage(sandbox)
        assert status == 200, page[-500:]
        # details' answer (details.rb `get_book_details`) and reviews' (both reviewers)
        assert "PublisherA" in page and "123-1234567890" in page, page
        assert page.count("Reviewer") == 2 and "Sorry" not in page, page
        seen[reviews_version(page)] = page
        return {"v1", "v2", "v3"} <= set(seen)

    wait_until(all_versions, timeout=60, what="a page from each reviews version", interval=0)
    # v1 shows no ratings; v2 black stars, v3 red ones: both from ratings (5 and 4 stars)
    assert "&#9733;" not in seen["v1"]
    assert seen["v2"].count('class="text-black-500"') == 2
    assert seen["v3"].count('class="text-red-500"') == 2
    assert seen["v3"].count("&#9733;") == 9 and seen["v3"].count("&#9734;") == 1


def test_reviews_v2_calls_ratings_and_v1_does_not(sandbox):
    def direct(app: str) -> dict:
        ip = sandbox.pod_ip("default", f"app=reviews,version={app}")
        status, body = get(f"http://{ip}:9080/reviews/0")
        assert status == 200, body
        return json.loads(body)

    before = ratings_requests(sandbox)
    v1 = direct("v1")
    assert all("rating" not in r for r in v1["reviews"]), v1
    assert ratings_requests(sandbox) == before
    v2 = direct("v2")
    assert [r["rating"] for r in v2["reviews"]] == [{"stars": 5, "color": "black"},
                                                    {"stars": 4, "color": "black"}]
    wait_until(lambda: ratings_requests(sandbox) == before + 1, timeout=10,
               what="ratings' log line of reviews-v2's call")


def test_analyze_finds_each_missing_subset_until_the_destination_rules_exist(mesh):
    virtual_services = str(bookinfo_file("virtual-service-all-v1.yaml"))
    out = mesh("analyze", "--use-kube=false", virtual_services)
    assert out.returncode == 7, out.stderr
    lines = out.stdout.splitlines()
    assert [re.search(r'not found: "(.*)"', line).group(1) for line in lines] == [
        "details+v1", "productpage+v1", "ratings+v1", "reviews+v1"], lines
    assert all(line.startswith("Error [IST0101] (VirtualService default/") for line in lines)
    out = mesh("analyze", "--use-kube=false", virtual_services,
               str(bookinfo_file("destination-rule-all.yaml")))
    assert out.returncode == 0 and out.stdout == "", (out.stdout, out.stderr)


def test_routes_trace_ends_at_reviews_v1_with_the_all_v1_rules(sandbox, mesh):
    files = [str(bookinfo_file(f)) for f in ("destination-rule-all.yaml",
                                               "virtual-service-all-v1.yaml")]
    trace = ("routes", "deploy/productpage-v1", "--trace", "http://reviews:9080/reviews/0")
    before = mesh(*trace)
    assert before.returncode == 0, before.stderr
    assert "outbound|9080||reviews.default.svc.cluster.local" in before.stdout, before.stdout
    sandbox.kubectl("apply", *[a for f in files for a in ("-f", f)])
    try:
        synced = mesh("sync", "--wait", timeout=90)
        assert synced.returncode == 0, synced.stderr
        out = mesh(*trace)
        assert out.returncode == 0, out.stderr
        cluster_line = [line for line in out.stdout.splitlines() if "cluster " in line]
        assert cluster_line and V1_CLUSTER in cluster_line[-1], out.stdout
        assert "DestinationRule reviews.default" in cluster_line[-1], out.stdout
        assert "OK: routed" in out.stdout
    finally:
        sandbox.kubectl("delete", *[a for f in files for a in ("-f", f)], "--wait=false")
