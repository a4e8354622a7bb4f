"""Traffic capture for the sandbox istiod's pods on the real backend's netns pod network
(`python -m sandbox up --backend real`, as root): istio-init runs the real `pilot-agent
istio-iptables` in each injected pod's namespace, the sandbox's Envoy runs as 1337 and gets
real istiod's 15001/15006 listeners, so bookinfo's app-to-app calls go through both
sidecars, as on real Istio (tests/real/test_real_istio_bookinfo.py
`test_reviews_v3_only_after_the_sample_s_rules`; docs/real-istio.md finding 20)."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request

import pytest

from sandbox.samples import bookinfo_file, resolve_scenario
from sandbox.testing import MeshCli, RunningSandbox, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]
REVIEWS = "reviews.default.svc.cluster.local"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    state = tmp_path_factory.mktemp("capture") / "state"
    scenario = resolve_scenario("bookinfo", state)
    with RunningSandbox(state, scenarios=[scenario], backend="real", timeout=180) as sb:
        yield sb


@pytest.fixture(scope="module")
def mesh(sandbox) -> MeshCli:
    return MeshCli(sandbox)


def complete_page(sandbox) -> str | None:
    gateway = sandbox.pod_ip("istio-system", "app=istio-ingressgateway")
    try:
        with urllib.request.urlopen(f"http://{gateway}:8080/productpage", timeout=10) as r:
            page = r.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    return page if "PublisherA" in page and "Sorry" not in page else None


def reviews_version(page: str) -> str:
    m = re.search(r"Reviews served by: reviews-(v\d)-", page)
    return m.group(1) if m else ""


def test_istio_init_captures_and_the_proxy_runs_as_1337(sandbox):
    pod = sandbox.pods("default", "app=productpage")[0]
    init = sandbox.kubectl("logs", pod["metadata"]["name"], "-c", "istio-init").stdout
    # istio-iptables' own report of the rules it restored (tools/istio-iptables)
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in init, init[-2000:]
    assert "--uid-owner 1337 -j RETURN" in init, init[-2000:]
    statuses = {s["name"]: s for s in pod["status"].get("initContainerStatuses", [])}
    assert statuses["istio-init"]["state"]["terminated"]["exitCode"] == 0
    envoys = [p for p in sandbox.process_ids()
              if b"envoy-bootstrap.json" in open(f"/proc/{p}/cmdline", "rb").read()
              and pod["metadata"]["name"].encode() in open(f"/proc/{p}/cmdline", "rb").read()]
    assert envoys, "productpage's Envoy not found"
    uid_line = next(line for line in open(f"/proc/{envoys[0]}/status")
                    if line.startswith("Uid:"))
    assert uid_line.split()[1:3] == ["1337", "1337"], uid_line


def test_the_proxy_listens_where_iptables_redirect(mesh):
    out = mesh("listeners", "deploy/productpage-v1")
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert ["0.0.0.0", "15001", "ALL", "PassthroughCluster"] in rows, out.stdout
    # the inbound chain matched on the original destination's port, then the passthrough
    assert ["0.0.0.0", "15006", "Addr:", "*:9080", "Cluster:", "inbound|9080||"] in rows, \
        out.stdout
    assert ["0.0.0.0", "15006", "ALL", "InboundPassthroughCluster"] in rows, out.stdout


def test_reviews_v3_only_after_the_sample_s_rules_and_productpage_logs_the_calls(
        sandbox, mesh):
    sandbox.kubectl("apply", "-f", str(bookinfo_file("destination-rule-all.yaml")),
                    "-f", str(bookinfo_file("virtual-service-reviews-v3.yaml")))
    synced = mesh("sync", "--wait", timeout=120)
    assert synced.returncode == 0, synced.stderr
    versions = []
    for _ in range(12):
        page = wait_until(lambda: complete_page(sandbox), timeout=30, what="a complete page")
        versions.append(reviews_version(page))
    assert set(versions) == {"v3"}, versions
    # the caller's sidecar took productpage's outbound call (before, only the inbound ones)
    out = mesh("accesslog", "deploy/productpage-v1", "-o", "json", "--path", "/reviews/0")
    assert out.returncode == 0, out.stderr
    calls = json.loads(out.stdout)
    assert calls, out.stdout
    assert {c["upstream_cluster"] for c in calls[-12:]} == {f"outbound|9080|v3|{REVIEWS}"}
    assert all(c["authority"] == "reviews:9080" and c["response_code"] == 200
               for c in calls[-12:]), calls[-12:]
    # and reviews-v3's sidecar took it in: the original destination, from 127.0.0.6
    out = mesh("accesslog", "deploy/reviews-v3", "-o", "json", "--path", "/reviews/0")
    assert out.returncode == 0, out.stderr
    inbound = [c for c in json.loads(out.stdout) if c["upstream_cluster"] == "inbound|9080||"]
    assert inbound, out.stdout
    assert inbound[-1]["upstream_local_address"].startswith("127.0.0.6:"), inbound[-1]
