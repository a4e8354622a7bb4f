"""Istio's bookinfo sample as the sandbox runs its images: `registry.istio.io/release/
examples-bookinfo-<service>-<version>` (samples/bookinfo/platform/kube/bookinfo.yaml; also
under docker.io/istio/) run as one Python HTTP server per container that answers what the
real service answers and calls what it calls, on port 9080 (each Dockerfile's `EXPOSE 9080`).
Sources, in the Istio module's samples/bookinfo/src:

- details (details/details.rb): `GET /details/<id>` the fixed book (`get_book_details`),
  a non-numeric id 400 `please provide numeric product id`; `/health`.
- ratings (ratings/ratings.js): `GET /ratings/<id>` `{"id": id, "ratings": {"Reviewer1": 5,
  "Reviewer2": 4}}` (`getLocalReviews`); `/health`.
- reviews (reviews/reviews-application/.../LibertyRestEndpoint.java): `GET /reviews/<id>`
  the two reviews (`getJsonResponse`) with `podname` ($HOSTNAME) and `clustername`
  ($CLUSTER_NAME, "null" when unset); with ENABLE_RATINGS (v2, v3: docker-bake.hcl
  `enable_ratings`) it first calls `http://ratings:9080/ratings/<id>` (`getRatings`:
  RATINGS_HOSTNAME, SERVICES_DOMAIN, RATINGS_SERVICE_PORT; timeout 10 s for black stars,
  2.5 s otherwise) and adds `rating` `{stars, color}` (STAR_COLOR: v3 `red`, else `black`),
  or `{"error": "Ratings service is currently unavailable"}`; v1 never calls ratings.
- productpage (productpage/productpage.py): `GET /productpage` calls
  `http://details:9080/details/0` then `http://reviews:9080/reviews/0` (`front`,
  `getProductDetails`, `getProductReviews`: DETAILS_HOSTNAME, REVIEWS_HOSTNAME,
  SERVICES_DOMAIN, *_SERVICE_PORT; timeout 3 s; reviews tried twice) and answers 200 with
  an HTML page holding both answers (templates/productpage.html), or each one's error text;
  `/api/v1/products`, `/api/v1/products/<id>` (details), `.../reviews`, `.../ratings`;
  `/health`. Each call forwards the tracing headers of `getForwardHeaders`.

Every call goes to the Service by name, as the real apps do. Where the pod has a network
namespace of its own (the real backend's netns pod network: its resolv.conf names the
kubelet's cluster DNS and istio-init's iptables send the connection through the sidecar), the
name is resolved by DNS. On the loopback pod networks (the API double, the real backend's
loopback mode) there is neither DNS nor capture: the name is resolved through the API server
(the pod's `SANDBOX_KUBECONFIG`) to one of the Service's ready endpoints (where a real API
server keeps loopback addresses out of Endpoints, one of the ready pods its selector picks),
which is called directly, as a cluster without a mesh's capture would route it - the
caller's sidecar is not on that path.
"""

from __future__ import annotations

import argparse
import html
import http.client
import json
import os
import pathlib
import random
import re
import ssl
import sys
import urllib.parse

from .app import AppServer, LoggedHandler, serve_until_stopped

PORT = 9080
_IMAGE = re.compile(r"(?:^|/)examples-bookinfo-(?P<service>productpage|details|reviews|ratings)"
                    r"-(?P<version>v[^:@/]*)(?:[:@]|$)")
# The images' ENV (reviews/Dockerfile `SERVICE_VERSION`, `ENABLE_RATINGS`, `STAR_COLOR` from
# docker-bake.hcl's args); the pod's env overrides them, as a container's env overrides its
# image's.
IMAGE_ENV = {
    ("reviews", "v1"): {"SERVICE_VERSION": "v1", "ENABLE_RATINGS": "false", "STAR_COLOR": "black"},
    ("reviews", "v2"): {"SERVICE_VERSION": "v2", "ENABLE_RATINGS": "true", "STAR_COLOR": "black"},
    ("reviews", "v3"): {"SERVICE_VERSION": "v3", "ENABLE_RATINGS": "true", "STAR_COLOR": "red"},
}
# productpage.py `getForwardHeaders` (details.rb and LibertyRestEndpoint.java keep the same)
FORWARD_HEADERS = (
    "x-request-id", "x-ot-span-context", "x-datadog-trace-id", "x-datadog-parent-id",
    "x-datadog-sampling-priority", "traceparent", "tracestate", "x-cloud-trace-context",
    "grpc-trace-bin", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
    "x-b3-flags", "sw8", "end-user", "user-agent", "cookie", "authorization", "jwt")
BOOK = {"author": "William Shakespeare", "year": 1595, "type": "paperback", "pages": 200,
        "publisher": "PublisherA", "language": "English", "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890"}
PRODUCT = {"id": 0, "title": "The Comedy of Errors", "descriptionHtml":
           "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: "
           "The Comedy of Errors is one of <b>William Shakespeare's</b> early plays."}
REVIEWS = (("Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour "
                         "is refreshing!"),
           ("Reviewer2", "Absolutely fun and entertaining. The play lacks thematic depth when "
                         "compared to other plays by Shakespeare."))


def image_service(image: str) -> tuple[str, str] | None:
    """(`reviews`, `v2`) for `registry.istio.io/release/examples-bookinfo-reviews-v2:1.20.3`;
    None for any other image."""
    m = _IMAGE.search(image.strip())
    return (m.group("service"), m.group("version")) if m else None


def command(image: str, python: str, listen: str) -> tuple[list[str], dict[str, str]] | None:
    """The sandbox's program for a bookinfo image and the image's own environment (which the
    container's env overrides), or None for another image."""
    found = image_service(image)
    if found is None:
        return None
    service, version = found
    return ([python, "-m", "sandbox.bookinfo", "--service", service, "--listen", listen,
             "--port", str(PORT)], dict(IMAGE_ENV.get(found, {"SERVICE_VERSION": version})))


# -- reaching a Service by name
class Upstreams:
    """`get(host, port, path, headers, timeout)` → (status, body bytes) or None when the
    Service cannot be reached (the real apps' exception path)."""

    def __init__(self, env: dict[str, str]):
        self.namespace = env.get("POD_NAMESPACE", "default")
        kubeconfig = env.get("SANDBOX_KUBECONFIG")
        # a pod of its own network namespace has cluster DNS; a loopback one asks the API
        self.api = _Api(kubeconfig) if kubeconfig and not env.get("SANDBOX_POD_NETNS") else None

    def address(self, host: str, port: int) -> tuple[str, int]:
        if self.api is None:
            return host, port
        name, _, namespace = host.partition(".")
        return self.api.endpoint(name, namespace or self.namespace, port)

    def get(self, host: str, port: int, path: str, headers: dict[str, str],
            timeout: float) -> tuple[int, bytes] | None:
        try:
            ip, target = self.address(host, port)
            conn = http.client.HTTPConnection(ip, target, timeout=timeout)
            try:
                conn.request("GET", path, headers={**headers, "Host": f"{host}:{port}"})
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()
        except (OSError, http.client.HTTPException, LookupError, ValueError) as e:
            print(f"Error: unable to contact http://{host}:{port}{path}: {e}", file=sys.stderr,
                  flush=True)
            return None


class _Api:
    """The Service's ready endpoints from the API server (what kube-proxy would pick among)."""

    def __init__(self, kubeconfig: str):
        import base64
        import yaml
        config = yaml.safe_load(pathlib.Path(kubeconfig).read_text())
        cluster = config["clusters"][0]["cluster"]
        self.server = urllib.parse.urlsplit(cluster["server"])
        self.token = config["users"][0]["user"].get("token", "")
        self.context = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())

    def _get(self, path: str) -> dict:
        conn = http.client.HTTPSConnection(self.server.hostname, self.server.port,
                                           context=self.context, timeout=5)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise LookupError(f"{path}: {response.status}")
            return json.loads(body)
        finally:
            conn.close()

    def endpoint(self, name: str, namespace: str, port: int) -> tuple[str, int]:
        base = f"/api/v1/namespaces/{namespace}"
        service = self._get(f"{base}/services/{name}")
        ports = [p for p in service["spec"].get("ports") or [] if int(p["port"]) == port]
        if not ports:
            raise LookupError(f"Service {namespace}/{name} has no port {port}")
        endpoints = self._get(f"{base}/endpoints/{name}")
        for subset in endpoints.get("subsets") or []:
            numbers = [int(p["port"]) for p in subset.get("ports") or []
                       if p.get("name", "") == ports[0].get("name", "")]
            addresses = subset.get("addresses") or []
            if numbers and addresses:
                return random.choice(addresses)["ip"], numbers[0]
        # A real API server keeps loopback pod addresses out of Endpoints
        # (ValidateEndpointIP: the real backend's loopback pod network): the ready pods the
        # selector picks, as the endpoints controller would list them
        # (pkg/controller/endpoint/endpoints_controller.go syncService, podutil.IsPodReady;
        # the target port by number or by the container port's name, FindPort).
        ready = []
        selector = service["spec"].get("selector") or {}
        query = urllib.parse.urlencode({"labelSelector": ",".join(
            f"{k}={v}" for k, v in sorted(selector.items()))})
        for pod in self._get(f"{base}/pods?{query}").get("items") or [] if selector else []:
            conditions = (pod.get("status") or {}).get("conditions") or []
            target = _target_port(ports[0].get("targetPort", port), pod)
            if pod["status"].get("podIP") and target and any(
                    c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                ready.append((pod["status"]["podIP"], target))
        if ready:
            return random.choice(ready)
        raise LookupError(f"Service {namespace}/{name} has no ready endpoint")


def _target_port(target, pod: dict) -> int | None:
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for p in container.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    return None


# -- the four services
def _hostname(env: dict[str, str], name: str) -> str:
    """productpage.py/LibertyRestEndpoint.java: `<NAME>_HOSTNAME` or the name, then
    `.SERVICES_DOMAIN`."""
    domain = env.get("SERVICES_DOMAIN")
    return env.get(f"{name.upper()}_HOSTNAME") or name + (f".{domain}" if domain else "")


def _port(env: dict[str, str], name: str) -> int:
    return int(env.get(f"{name.upper()}_SERVICE_PORT") or PORT)


class Bookinfo:
    def __init__(self, service: str, env: dict[str, str], upstreams: Upstreams):
        self.service, self.env, self.upstreams = service, env, upstreams

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`."""
        if path == "/health":
            return 200, "application/json", json.dumps(
                {"status": f"{self.service.capitalize()} is healthy"}).encode()
        return getattr(self, self.service)(path, headers)

    def _json(self, status: int, value) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(value).encode()

    def details(self, path: str, headers) -> tuple[int, str, bytes]:
        if not path.startswith("/details"):
            return self._json(404, {"error": "not found"})
        try:
            product = int(path.rstrip("/").rsplit("/", 1)[-1])
        except ValueError:
            return self._json(400, {"error": "please provide numeric product id"})
        return self._json(200, {"id": product, **BOOK})

    def ratings(self, path: str, headers) -> tuple[int, str, bytes]:
        m = re.match(r"^/ratings/([0-9]*)", path)
        if not m:
            return self._json(404, {"error": "invalid resource"})
        try:
            product = int(m.group(1))
        except ValueError:
            return self._json(400, {"error": "please provide numeric product ID"})
        return self._json(200, {"id": product, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})

    def reviews(self, path: str, headers) -> tuple[int, str, bytes]:
        m = re.match(r"^/reviews/(-?[0-9]+)$", path)
        if not m:
            return self._json(404, {"error": "not found"})
        product = m.group(1)
        color = self.env.get("STAR_COLOR") or "black"
        stars = {}
        enabled = (self.env.get("ENABLE_RATINGS") or "").lower() == "true"
        if enabled:
            got = self.upstreams.get(_hostname(self.env, "ratings"), _port(self.env, "ratings"),
                                     f"/ratings/{product}", headers,
                                     10.0 if color == "black" else 2.5)
            if got is not None and got[0] == 200:
                stars = json.loads(got[1]).get("ratings") or {}
        reviews = []
        for reviewer, text in REVIEWS:
            review = {"reviewer": reviewer, "text": text}
            if enabled:
                review["rating"] = ({"stars": stars[reviewer], "color": color}
                                    if reviewer in stars
                                    else {"error": "Ratings service is currently unavailable"})
            reviews.append(review)
        return self._json(200, {"id": product, "podname": self.env.get("HOSTNAME"),
                                "clustername": self.env.get("CLUSTER_NAME") or "null",
                                "reviews": reviews})

    def _call(self, name: str, path: str, headers, tries: int = 1) -> tuple[int, dict]:
        got = None
        for _ in range(tries):
            got = self.upstreams.get(_hostname(self.env, name), _port(self.env, name), path,
                                     headers, 3.0)
            if got is not None and got[0] == 200:
                return 200, json.loads(got[1])
        status = got[0] if got is not None and got[0] else 500
        return status, {"error": f"Sorry, product {name} are currently unavailable for this book."}

    def productpage(self, path: str, headers) -> tuple[int, str, bytes]:
        if path in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", b"<html><body>Simple Bookstore App " \
                b"<a href=\"productpage?u=normal\">Normal user</a></body></html>\n"
        if path == "/api/v1/products":
            return self._json(200, [PRODUCT])
        m = re.match(r"^/api/v1/products/([^/]+)(/reviews|/ratings)?$", path)
        if m:
            name = {"/reviews": "reviews", "/ratings": "ratings"}.get(m.group(2) or "", "details")
            return self._json(*self._call(name, f"/{name}/{m.group(1)}", headers))
        if path != "/productpage":
            return 404, "text/html", b"<h1>Not Found</h1>\n"
        details_status, details = self._call("details", "/details/0", headers)
        reviews_status, reviews = self._call("reviews", "/reviews/0", headers, tries=2)
        return 200, "text/html; charset=utf-8", render_page(details_status, details,
                                                            reviews_status, reviews).encode()


def render_page(details_status: int, details: dict, reviews_status: int, reviews: dict) -> str:
    """The parts of templates/productpage.html that carry the two answers."""
    out = ["<html><head><title>Simple Bookstore App</title></head><body>",
           f"<h1>{html.escape(PRODUCT['title'])}</h1>", "<h4>Book Details</h4>"]
    if details_status == 200:
        out += [f"<dl><dt>Type:</dt><dd>{html.escape(str(details.get('type')))}</dd>"
                f"<dt>Pages:</dt><dd>{details.get('pages')}</dd>"
                f"<dt>Publisher:</dt><dd>{html.escape(str(details.get('publisher')))}</dd>"
                f"<dt>Language:</dt><dd>{html.escape(str(details.get('language')))}</dd>"
                f"<dt>ISBN-10:</dt><dd>{html.escape(str(details.get('ISBN-10')))}</dd>"
                f"<dt>ISBN-13:</dt><dd>{html.escape(str(details.get('ISBN-13')))}</dd></dl>"]
    else:
        out.append(f"<p>{html.escape(str(details.get('error')))}</p>")
    out.append("<h4>Book Reviews</h4>")
    if reviews_status == 200:
        for review in reviews.get("reviews") or []:
            rating = review.get("rating") or {}
            if rating.get("stars"):
                out.append(f'<div class="text-{html.escape(rating["color"])}-500">'
                           + "&#9733;" * rating["stars"] + "&#9734;" * (5 - rating["stars"])
                           + "</div>")
            elif rating.get("error"):
                out.append(f"<p>{html.escape(rating['error'])}</p>")
            out.append(f"<blockquote><p>\"{html.escape(review['text'])}\"</p>"
                       f"<small>{html.escape(review['reviewer'])}</small>"
                       f"<small>Reviews served by: {html.escape(str(reviews.get('podname')))}"
                       "</small></blockquote>")
    else:
        out.append(f"<p>{html.escape(str(reviews.get('error')))}</p>")
    out.append("</body></html>\n")
    return "\n".join(out)


def make_handler(app: Bookinfo):
    class Handler(LoggedHandler):
        def do_GET(self):
            path = urllib.parse.urlsplit(self.path).path
            forward = {k: v for k in FORWARD_HEADERS if (v := self.headers.get(k)) is not None}
            status, content_type, body = app.answer(path, forward)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.bookinfo")
    p.add_argument("--service", required=True,
                   choices=("productpage", "details", "reviews", "ratings"))
    p.add_argument("--listen", required=True)
    p.add_argument("--port", type=int, default=PORT)
    args = p.parse_args(argv)
    env = dict(os.environ)
    app = Bookinfo(args.service, env, Upstreams(env))
    server = AppServer((args.listen, args.port), make_handler(app))
    return serve_until_stopped([server], f"{args.service} listening on {args.listen}:{args.port}")


if __name__ == "__main__":
    sys.exit(main())
