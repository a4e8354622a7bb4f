"""The sandbox's bookinfo services (sandbox/bookinfo.py) against what the real ones answer and
call (samples/bookinfo/src), with the upstreams recorded instead of dialled; and the
`bookinfo` scenario name (sandbox/samples.py)."""

from __future__ import annotations

import json

import pytest
import yaml

from sandbox import bookinfo
from sandbox.samples import resolve_scenario


class Recorded:
    """Upstreams that answer from a table and record each call."""

    def __init__(self, answers: dict[str, tuple[int, bytes] | None]):
        self.answers, self.calls = answers, []

    def get(self, host, port, path, headers, timeout):
        self.calls.append((host, port, path, headers.get("x-request-id"), timeout))
        return self.answers.get(f"{host}:{port}{path}")


def app(service: str, version: str = "v1", answers=None, **env):
    image_env = bookinfo.command(f"registry.istio.io/release/examples-bookinfo-{service}-"
                                 f"{version}:1.20.3", "python", "127.0.0.1")[1]
    upstreams = Recorded(answers or {})
    return bookinfo.Bookinfo(service, {**image_env, "HOSTNAME": f"{service}-{version}-x", **env},
                             upstreams), upstreams


@pytest.mark.parametrize("image,expected", [
    ("registry.istio.io/release/examples-bookinfo-reviews-v2:1.20.3", ("reviews", "v2")),
    ("docker.io/istio/examples-bookinfo-productpage-v1:1.18.0", ("productpage", "v1")),
    ("examples-bookinfo-details-v1", ("details", "v1")),
    ("docker.io/istio/proxyv2:1.28.0", None),
    ("istioinaction/catalog:latest", None),
], ids=["release-hub", "docker-hub", "bare", "proxy", "other-app"])
def test_image_service(image, expected):
    assert bookinfo.image_service(image) == expected


@pytest.mark.parametrize("target,expected", [(9080, 9080), ("9080", 9080), ("http", 9081),
                                             ("grpc", None)], ids=["number", "digits", "name",
                                                                   "unknown-name"])
def test_target_port_by_number_or_container_port_name(target, expected):
    pod = {"spec": {"containers": [{"ports": [{"name": "http", "containerPort": 9081}]}]}}
    assert bookinfo._target_port(target, pod) == expected


def test_details_and_ratings_answer_the_sample_s_data():
    details, _ = app("details")
    status, _, body = details.answer("/details/0", {})
    assert status == 200 and json.loads(body)["ISBN-13"] == "123-1234567890"
    assert details.answer("/details/x", {})[0] == 400
    ratings, _ = app("ratings")
    status, _, body = ratings.answer("/ratings/7", {})
    assert json.loads(body) == {"id": 7, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}


def test_reviews_v1_never_calls_ratings_and_v3_shows_red_stars():
    v1, calls = app("reviews", "v1")
    body = json.loads(v1.answer("/reviews/0", {"x-request-id": "r1"})[2])
    assert calls.calls == [] and all("rating" not in r for r in body["reviews"])
    assert body["podname"] == "reviews-v1-x" and body["clustername"] == "null"
    ratings = json.dumps({"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}).encode()
    v3, calls = app("reviews", "v3", {"ratings:9080/ratings/0": (200, ratings)})
    body = json.loads(v3.answer("/reviews/0", {"x-request-id": "r1"})[2])
    assert calls.calls == [("ratings", 9080, "/ratings/0", "r1", 2.5)]
    assert body["reviews"][1]["rating"] == {"stars": 4, "color": "red"}
    v2, _ = app("reviews", "v2")  # ratings unreachable
    body = json.loads(v2.answer("/reviews/0", {})[2])
    assert body["reviews"][0]["rating"] == {"error": "Ratings service is currently unavailable"}


def test_productpage_calls_details_then_reviews_twice_on_failure():
    page, calls = app("productpage", answers={
        "details:9080/details/0": (200, json.dumps({"id": 0, **bookinfo.BOOK}).encode()),
        "reviews:9080/reviews/0": (503, b"no healthy upstream")})
    status, content_type, body = page.answer("/productpage", {"x-request-id": "r2"})
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert [c[2] for c in calls.calls] == ["/details/0", "/reviews/0", "/reviews/0"]
    assert "PublisherA" in body.decode()
    assert "Sorry, product reviews are currently unavailable for this book." in body.decode()
    # SERVICES_DOMAIN and <NAME>_HOSTNAME, as productpage.py builds its upstream URLs
    page, calls = app("productpage", SERVICES_DOMAIN="default.svc.cluster.local",
                      DETAILS_HOSTNAME="book-details")
    page.answer("/productpage", {})
    assert [c[0] for c in calls.calls[:2]] == ["book-details",
                                               "reviews.default.svc.cluster.local"]


def test_bookinfo_scenario_is_generated_from_the_istio_module(tmp_path):
    path = resolve_scenario("bookinfo", tmp_path)
    assert path.parent == tmp_path / "scenarios"
    docs = list(yaml.safe_load_all(path.read_text()))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert ("Gateway", "bookinfo-gateway") in kinds and ("Deployment", "reviews-v3") in kinds
    assert ("Deployment", "istiod") in kinds and ("Deployment", "catalog") not in kinds
    default = [d for d in docs if d["kind"] == "Namespace" and d["metadata"]["name"] == "default"]
    assert default[0]["metadata"]["labels"] == {"istio-injection": "enabled"}
    assert resolve_scenario("catalog-timeout", tmp_path).name == "catalog-timeout.yaml"
    assert str(resolve_scenario("missing.yaml", tmp_path)) == "missing.yaml"
