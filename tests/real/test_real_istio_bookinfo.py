"""Istio's bookinfo on real Istio, applied as its docs tell a user to: istiod installed as a pod
(`install(..., istiod="pod")`, as tests/real/test_real_istiod_pod.py), the sandbox kubelet on
the netns pod network (istio-init's real iptables, istio-proxy the real pilot-agent and
Envoy), an ingress gateway deployed with gateway injection (test_real_istio_chapter10.py's),
`kubectl label namespace default istio-injection=enabled`, then `kubectl apply -f` of the
Istio module's samples/bookinfo/platform/kube/bookinfo.yaml and
networking/bookinfo-gateway.yaml. bookinfo's images run as sandbox/bookinfo.py, which calls
its upstreams by Service name through cluster DNS, captured into its sidecar.

Then `/productpage` through the gateway; `kubectl mesh sync` beside `istioctl proxy-status`;
`routes`/`clusters` of productpage beside `istioctl proxy-config`; the sample's
virtual-service-reviews-v3.yaml and destination-rule-all.yaml, `kubectl mesh sync --wait`,
and only reviews v3 answers; `kubectl mesh analyze` beside `istioctl analyze` on the sample's
networking files (docs/real-istio.md, "Bookinfo on real Istio"). One cluster for the module:
the steps run in file order."""

from __future__ import annotations

import json
import os
import re

import pytest

from sandbox.samples import bookinfo_file, sample_file
from sandbox.testing import wait_until

from tests.real.test_real_istio_chapter10 import GATEWAY, netns_of, process_users
from tests.real.test_real_istio_commands import by_name, istiod_pod_cluster, ok
from tests.scenarios.test_bookinfo import get

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]
APPS = ("details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3", "productpage-v1")
BOOKINFO = "samples/bookinfo/platform/kube/bookinfo.yaml"
REVIEWS = "reviews.default.svc.cluster.local"


def complete_page(cluster) -> str | None:
    """The gateway's `/productpage` when it holds both details' and reviews' answers."""
    gateway = cluster.kubectl("get", "pods", "-n", "istio-system", "-l", "istio=ingressgateway",
                              "-o", "jsonpath={.items[0].status.podIP}")
    status, page = get(f"http://{gateway}:8080/productpage")
    return page if status == 200 and "PublisherA" in page and "Sorry" not in page else None


def reviews_version(page: str) -> str:
    m = re.search(r"Reviews served by: reviews-(v\d)-", page)
    return m.group(1) if m else ""


@pytest.fixture(scope="module")
def cluster(control_planes, binaries):
    cp = control_planes()
    with istiod_pod_cluster(cp, binaries) as c:
        c.await_injector()
        c.apply(GATEWAY)
        # as samples/bookinfo/platform/kube/README.md and the bookinfo docs tell a user
        c.kubectl("label", "namespace", "default", "istio-injection=enabled")
        c.kubectl("apply", "-f", str(sample_file(BOOKINFO)))
        c.kubectl("apply", "-f", str(bookinfo_file("bookinfo-gateway.yaml")))
        wait_until(what="bookinfo's six pods", predicate=lambda: len(c.kubectl(
            "get", "pods", "-n", "default", "-o", "name").split()) == 6, timeout=90)
        for ns in ("default", "istio-system"):
            c.kubectl("wait", "-n", ns, "--for=condition=Ready", "pod", "--all",
                      "--timeout=240s")
        yield c


@pytest.fixture(scope="module")
def productpage(cluster) -> str:
    return cluster.kubectl("get", "pods", "-l", "app=productpage",
                           "-o", "jsonpath={.items[0].metadata.name}") + ".default"


def test_bookinfo_runs_with_real_sidecars(cluster):
    pods = json.loads(cluster.kubectl("get", "pods", "-n", "default", "-o", "json"))["items"]
    assert sorted(p["metadata"]["name"].rsplit("-", 2)[0] for p in pods) == sorted(APPS)
    for pod in pods:
        inits = [c["name"] for c in pod["spec"]["initContainers"]]
        assert inits == ["istio-init", "istio-proxy"], inits  # istiod's real injection
        users = process_users(netns_of(cluster, "default", pod["metadata"]["name"]))
        assert users.get("pilot-agent") == "1337" and users.get("envoy") == "1337", users


def test_productpage_through_the_gateway(cluster):
    seen: dict[str, str] = {}

    def every_version():
        page = complete_page(cluster)
        if page:
            seen[reviews_version(page)] = page
        return {"v1", "v2", "v3"} <= set(seen)
    # the first requests may meet a sidecar still without its inbound config
    wait_until(every_version, timeout=120, what="a complete page from each reviews version",
               interval=0.2)
    assert "&#9733;" not in seen["v1"]
    assert seen["v2"].count('class="text-black-500"') == 2  # ratings' stars through reviews
    assert seen["v3"].count('class="text-red-500"') == 2


def sync_rows(cluster) -> tuple[dict, dict]:
    ours = by_name(ok(cluster.mesh("sync"), 0, 7))
    theirs = by_name(ok(cluster.istioctl("proxy-status", "-v", "1")))
    columns = ("CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD", "VERSION")
    return ({p: {c: r[c] for c in columns} for p, r in ours.items()},
            {p: {c: r[c] for c in columns} for p, r in theirs.items()})


def test_sync_beside_istioctl_proxy_status(cluster):
    ours, theirs = wait_until(what="the same proxies and statuses in both", predicate=lambda: (
        lambda o, t: (o, t) if o == t and len(o) == 7 else None)(*sync_rows(cluster)),
        timeout=90)
    assert {p.split("-")[0] for p in ours} == {"details", "ratings", "reviews", "productpage",
                                               "istio"}
    assert {r["RDS"] for r in ours.values()} == {"SYNCED"}


@pytest.mark.parametrize("command", ["routes", "clusters", "clusters --fqdn " + REVIEWS])
def test_productpage_s_tables_beside_istioctl_proxy_config(cluster, productpage, command):
    name, *flags = command.split()
    ours = [line.rstrip() for line in ok(cluster.mesh(name, productpage, *flags)).splitlines()]
    theirs = [line.rstrip() for line in ok(cluster.istioctl("proxy-config", name, productpage,
                                                            *flags)).splitlines()]
    assert len(theirs) >= 2
    # istioctl's route order follows Envoy's dump order (docs/real-istio.md finding 14)
    assert ours[0] == theirs[0] and sorted(ours) == sorted(theirs)


def test_reviews_v3_only_after_the_sample_s_rules(cluster, productpage):
    cluster.kubectl("apply", "-f", str(bookinfo_file("destination-rule-all.yaml")),
                    "-f", str(bookinfo_file("virtual-service-reviews-v3.yaml")))
    ok(cluster.mesh("sync", "--wait", timeout=120))
    versions = []
    for _ in range(12):
        page = wait_until(lambda: complete_page(cluster), timeout=30, what="a complete page")
        versions.append(reviews_version(page))
    assert set(versions) == {"v3"}, versions
    trace = ok(cluster.mesh("routes", productpage, "--trace", "http://reviews:9080/reviews/0"))
    cluster_line = [line for line in trace.splitlines() if "cluster " in line][-1]
    assert f"outbound|9080|v3|{REVIEWS}" in cluster_line, trace


def test_analyze_the_sample_s_files_beside_istioctl(cluster):
    virtual_services = str(bookinfo_file("virtual-service-all-v1.yaml"))
    rules = str(bookinfo_file("destination-rule-all.yaml"))
    ours = cluster.mesh("analyze", "--use-kube=false", virtual_services)
    theirs = cluster.istioctl("analyze", "--use-kube=false", virtual_services)
    assert (ours.returncode, theirs.returncode) == (7, 79)
    lines = ours.stdout.splitlines()
    assert lines == theirs.stdout.splitlines() and len(lines) == 4, (ours.stdout, theirs.stdout)
    assert all("[IST0101]" in line for line in lines)
    ours = cluster.mesh("analyze", "--use-kube=false", virtual_services, rules)
    theirs = cluster.istioctl("analyze", "--use-kube=false", virtual_services, rules)
    assert (ours.returncode, theirs.returncode) == (0, 0)
    assert ours.stdout == "" and "No validation issues found" in theirs.stdout + theirs.stderr


def test_analyze_the_live_bookinfo_beside_istioctl(cluster):
    """With destination-rule-all.yaml applied (the previous test), both find the two ratings
    subsets no pod carries (IST0173: `v2-mysql`, `v2-mysql-vm`) and nothing else."""
    ours = cluster.mesh("analyze", "-n", "default")
    theirs = cluster.istioctl("analyze", "-n", "default")
    assert (ours.returncode, theirs.returncode) == (7, 79), (ours.stderr, theirs.stderr)
    lines = ours.stdout.splitlines()
    assert lines == theirs.stdout.splitlines(), (ours.stdout, theirs.stdout)
    assert [re.search(r"Subset (\S+) defined", line).group(1) for line in lines] == [
        "v2-mysql", "v2-mysql-vm"], lines
    assert all(line.startswith("Error [IST0173] (DestinationRule default/ratings)")
               for line in lines)
