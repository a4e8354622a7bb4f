"""xDS acceptance through the whole sandbox: real kubectl edits objects in the API double,
the istiod pod pushes over ADS to real Envoys, and istiod's /debug/syncz plus Envoy's own
admin API tell what happened (ACK, STALE, NACK, which replica serves whom, UT timeouts).

The tests share one default-scenario sandbox and each restores what it changed, so their
order does not matter; the two-istiod test starts a sandbox of its own.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml

from sandbox.testing import ROOT, SCENARIOS, RunningSandbox

# In the slow matrix (`make test-fast` leaves it out): the sandbox's own xDS acceptance, a sandbox
# of its own (the commands' view of it runs in tests/sync and tests/cli).
pytestmark = pytest.mark.slow

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
TYPES = ("cluster", "listener", "route", "endpoint")  # syncz's flat field prefixes
CATALOG_HOST = "catalog.istioinaction.io"
INVALID = "sandbox.kubectl-mesh.io/invalid"
DR_FILE = SCENARIOS / "catalog-destinationrule.yaml"


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    with RunningSandbox(tmp_path_factory.mktemp("mesh") / "state") as s:
        yield s


# -- helpers -------------------------------------------------------------------------------

def http_get(url: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def syncz_at(ip: str) -> dict[str, dict]:
    """istiod's /debug/syncz as {proxy id: entry}."""
    status, body = http_get(f"http://{ip}:15014/debug/syncz")
    assert status == 200, body
    return {entry["proxy"]: entry for entry in json.loads(body)}


def istiod_ips(sb: RunningSandbox) -> list[str]:
    """From the sandbox's status.json: cheaper than a kubectl call in every poll."""
    return sorted(p["podIP"] for p in sb.status()
                  if p["namespace"] == "istio-system" and p["name"].startswith("istiod-"))


def syncz(sb: RunningSandbox) -> dict[str, dict]:
    return syncz_at(istiod_ips(sb)[0])


def acked(entry: dict) -> bool:
    """Every type the proxy subscribed to (at least CDS and LDS) sent and ACKed (istioctl's
    SYNCED), no NACK pending. A gateway with no Gateway object has no routes to ask for."""
    subscribed = [prefix for prefix, url in zip(TYPES, (CDS, LDS, RDS, EDS))
                  if url in entry["resources"] or prefix in ("cluster", "listener")]
    return all(entry.get(f"{p}_sent") and entry.get(f"{p}_sent") == entry.get(f"{p}_acked")
               for p in subscribed) and not any(r.get("lastError")
                                                for r in entry["resources"].values())


def proxy_ids(sb: RunningSandbox) -> set[str]:
    """`<pod>.<ns>` of every pod with an istio-proxy container (gateway and sidecars)."""
    return {f"{p['name']}.{p['namespace']}" for p in sb.status()
            if any(c["name"] == "istio-proxy" for c in p["containers"])}


def all_acked(sb: RunningSandbox, expected: set[str]):
    state = syncz(sb)
    return state if set(state) == expected and all(acked(e) for e in state.values()) else None


def envoy_pid(sb: RunningSandbox, pod_name: str) -> int:
    return next(c["pid"] for p in sb.status() if p["name"] == pod_name
                for c in p["containers"] if c["name"] == "istio-proxy")


def envoy_stat(ip: str, name: str) -> int:
    status, body = http_get(f"http://{ip}:15000/stats?filter=^{re.escape(name)}$")
    assert status == 200, body
    values = [int(line.split(": ", 1)[1]) for line in body.decode().splitlines()
              if line.startswith(name + ": ")]
    return values[0] if values else 0


def default_virtual_service() -> dict:
    return next(d for d in yaml.safe_load_all((SCENARIOS / "default.yaml").read_text())
                if d and d["kind"] == "VirtualService" and d["metadata"]["name"] == "catalog-v1-v2")


def restore_virtual_service(sb: RunningSandbox) -> None:
    """Back to the default scenario's spec (merge patch: lists are replaced whole)."""
    spec = default_virtual_service()["spec"]
    sb.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type", "merge",
               "-p", json.dumps({"spec": spec}))


def delete_destination_rule(sb: RunningSandbox) -> None:
    sb.kubectl("delete", "-f", str(DR_FILE), "--ignore-not-found")


# -- 1. every proxy ACKed ------------------------------------------------------------------

def test_syncz_lists_every_proxy_acked_on_all_types(sb):
    expected = proxy_ids(sb)
    assert len(expected) == 4  # the gateway and the three catalog sidecars
    state = sb.wait_for(lambda: all_acked(sb, expected), timeout=30, what="4 proxies ACKed")
    gateway = next(e for e in state.values() if e["proxy"].startswith("istio-ingressgateway-"))
    assert gateway["proxy_type"] == "router"
    assert {e["proxy_type"] for e in state.values() if e is not gateway} == {"sidecar"}
    for entry in state.values():
        assert {CDS, LDS, RDS, EDS} <= set(entry["resources"])
        assert entry["istio_version"] and "proxy_version" not in entry  # Syncz never sets it


# -- 2. a paused Envoy is STALE --------------------------------------------------------------

def test_paused_sidecar_is_stale_until_resumed(sb):
    expected = proxy_ids(sb)
    before = sb.wait_for(lambda: all_acked(sb, expected), timeout=30, what="all ACKed")
    paused = sorted(i for i in expected if i.startswith("catalog-"))[0]
    pid = envoy_pid(sb, paused.rsplit(".", 1)[0])
    # Bind the VirtualService to the mesh too, so the change reaches the sidecars' RDS.
    change = [{"op": "add", "path": "/spec/hosts/-", "value": "catalog"},
              {"op": "add", "path": "/spec/gateways/-", "value": "mesh"},
              {"op": "add", "path": "/spec/http/0/timeout", "value": "3s"}]
    os.kill(pid, signal.SIGSTOP)
    try:
        sb.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type", "json",
                   "-p", json.dumps(change))

        def stale_only_paused():
            state = syncz(sb)
            entry = state[paused]
            pushed = all(state[i]["route_sent"] != before[i]["route_sent"] for i in expected)
            others = all(acked(e) for i, e in state.items() if i != paused)
            return state if pushed and others and entry["route_sent"] != entry["route_acked"] \
                else None

        state = sb.wait_for(stale_only_paused, timeout=30,
                            what=f"{paused} STALE on RDS while the others are ACKed")
        entry = state[paused]
        assert entry["route_acked"] == before[paused]["route_acked"]  # still the old routes
        assert entry["resources"][RDS]["acked"] != entry["resources"][RDS]["sent"]
        assert not entry["resources"][RDS].get("lastError")  # STALE, not ERROR
        # The stopped Envoy cannot ACK, so no event can mark the moment: half a second in
        # which a wrongly recorded ACK would show.
        time.sleep(0.5)
        assert syncz(sb)[paused]["route_acked"] == before[paused]["route_acked"]
    finally:
        os.kill(pid, signal.SIGCONT)
        restore_virtual_service(sb)
    sb.wait_for(lambda: all_acked(sb, expected), timeout=30, what="all ACKed after SIGCONT")


# -- 3. NACKs carry Envoy's message ------------------------------------------------------------

def test_invalid_destinationrule_is_nacked_on_cds_and_clears(sb):
    expected = proxy_ids(sb)
    gateway_ip = sb.pod_ip("istio-system", "app=istio-ingressgateway")
    sb.kubectl("apply", "-f", str(DR_FILE))
    try:
        sb.wait_for(lambda: all_acked(sb, expected), timeout=30, what="ACK of the DR")
        rejected_before = envoy_stat(gateway_ip, "cluster_manager.cds.update_rejected")
        sb.kubectl("annotate", "dr", "catalog", "-n", "istioinaction", f"{INVALID}=true")

        def cds_nacked():
            state = syncz(sb)
            errors = {i: (e["resources"].get(CDS) or {}).get("lastError") for i, e in state.items()}
            return errors if set(errors) == expected and all(errors.values()) else None

        errors = sb.wait_for(cds_nacked, timeout=30, what="CDS NACK on every proxy")
        for message in errors.values():
            assert "Error adding/updating cluster(s)" in message, message
            assert "catalog.istioinaction.svc.cluster.local" in message and "ring hash" in message
        assert envoy_stat(gateway_ip, "cluster_manager.cds.update_rejected") > rejected_before
        for p in sb.pods("istioinaction"):
            assert envoy_stat(p["status"]["podIP"], "cluster_manager.cds.update_rejected") > 0

        sb.kubectl("annotate", "dr", "catalog", "-n", "istioinaction", f"{INVALID}-")
        state = sb.wait_for(lambda: all_acked(sb, expected), timeout=30, what="ACK after the fix")
        assert not any((e["resources"].get(CDS) or {}).get("lastError") for e in state.values())
    finally:
        delete_destination_rule(sb)
    sb.wait_for(lambda: all_acked(sb, expected), timeout=30, what="ACK after cleanup")


def test_duplicate_gateway_domain_is_nacked_on_rds(sb):
    expected = proxy_ids(sb)
    duplicate = default_virtual_service()
    duplicate["metadata"]["name"] = "catalog-duplicate"
    gateway_id = next(i for i in expected if i.startswith("istio-ingressgateway-"))
    try:
        sb.kubectl("apply", "-f", "-", input=yaml.safe_dump(duplicate))
        message = sb.wait_for(
            lambda: (syncz(sb)[gateway_id]["resources"].get(RDS) or {}).get("lastError"),
            timeout=30, what="RDS NACK on the gateway")
        assert "Only unique values for domains are permitted" in message
        assert CATALOG_HOST in message
        state = syncz(sb)
        assert state[gateway_id]["route_sent"] != state[gateway_id]["route_acked"]
        assert all(acked(e) for i, e in state.items() if i != gateway_id)  # sidecars unaffected
    finally:
        sb.kubectl("delete", "vs", "catalog-duplicate", "-n", "istioinaction", "--ignore-not-found")
    state = sb.wait_for(lambda: all_acked(sb, expected), timeout=30, what="ACK after deleting it")
    assert not state[gateway_id]["resources"][RDS].get("lastError")


# -- 4. two istiod replicas share the proxies ------------------------------------------------

def test_two_istiod_replicas_each_serve_a_disjoint_part(tmp_path):
    scenario = tmp_path / "mesh4.yaml"
    scenario.write_text(subprocess.run(
        [sys.executable, "-m", "sandbox.generate", "--sidecars", "4", "--istiod-replicas", "2"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    with RunningSandbox(tmp_path / "state", scenarios=[scenario]) as two:
        expected = proxy_ids(two)
        assert len(expected) == 5  # 4 sidecars and the gateway
        istiods = istiod_ips(two)
        assert len(istiods) == 2

        def split():
            views = [syncz_at(ip) for ip in istiods]
            together = set().union(*views)
            complete = together == expected and sum(len(v) for v in views) == len(expected)
            return views if complete and all(acked(e) for v in views for e in v.values()) else None

        views = two.wait_for(split, timeout=30, what="both istiods' syncz covering every proxy")
        assert all(views) and not set(views[0]) & set(views[1])
        # The other replica does not know a proxy it does not serve (like istiod).
        other = next(iter(views[0]))
        status, body = http_get(f"http://{istiods[1]}:15014/debug/config_dump?proxyID={other}")
        assert status == 404 and b"not connected" in body.lower()


# -- 5. the timeout scenario: UT 504s from the slow v2 pod -------------------------------------

def test_timeout_scenario_gives_ut_504_from_the_slow_pod(sb):
    expected = proxy_ids(sb)
    gateway_ip = sb.pod_ip("istio-system", "app=istio-ingressgateway")
    v1 = {p["status"]["podIP"] for p in sb.pods("istioinaction", "app=catalog,version=v1")}
    v2 = [p["status"]["podIP"] for p in sb.pods("istioinaction", "app=catalog,version=v2")]

    def direct_seconds(ip: str) -> float:
        started = time.monotonic()
        status, _ = http_get(f"http://{ip}:3000/items")
        assert status == 200
        return time.monotonic() - started

    timings = {ip: direct_seconds(ip) for ip in v2}
    slow = max(timings, key=timings.get)
    assert timings[slow] > 0.8 and min(timings.values()) < 0.5, timings  # one slow pod (~1 s)

    sb.kubectl("apply", "-f", str(DR_FILE), "-f", str(SCENARIOS / "catalog-timeout.yaml"))
    try:
        sb.wait_for(lambda: all_acked(sb, expected) and http_get(
            f"http://{gateway_ip}:8080/items", {"Host": CATALOG_HOST})[0] in (200, 504),
            timeout=30, what="DR and timeout pushed")

        def request(_):
            return http_get(f"http://{gateway_ip}:8080/items", {"Host": CATALOG_HOST})[0]

        codes: list[int] = []
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for _ in range(3):  # 20 requests; more only if chance hid v1 or the slow pod
                codes += list(pool.map(request, range(20)))
                lines = gateway_log_lines(sb, len(codes))
                if 504 in codes and any(upstream(line) in v1 for line in lines):
                    break
        assert set(codes) <= {200, 504} and 504 in codes and 200 in codes, codes
        lines = gateway_log_lines(sb, len(codes))
        timeouts = [line for line in lines if '" 504 UT response_timeout ' in line]
        assert timeouts and all(upstream(line) == slow for line in timeouts), timeouts[:3]
        assert {upstream(line) for line in lines if '" 200 - via_upstream ' in line} <= v1 | set(v2)
        to_v1 = [line for line in lines if upstream(line) in v1]
        assert to_v1 and all('" 200 ' in line for line in to_v1)  # v1 requests succeed
        assert not [line for line in lines if upstream(line) == slow and '" 200 ' in line]
    finally:
        sb.kubectl("apply", "-f", "-", input=yaml.safe_dump(default_virtual_service()))
        delete_destination_rule(sb)
    vs = json.loads(sb.kubectl("get", "vs", "catalog-v1-v2", "-n", "istioinaction",
                               "-o", "json").stdout)
    assert "timeout" not in vs["spec"]["http"][0]
    sb.wait_for(lambda: all_acked(sb, expected), timeout=30, what="ACK after cleanup")


def gateway_log_lines(sb: RunningSandbox, count: int) -> list[str]:
    """The last `count` access-log lines for the catalog host (Envoy flushes every second)."""
    def lines():
        out = sb.kubectl("logs", "-n", "istio-system", "deploy/istio-ingressgateway",
                         "--tail", str(count + 50)).stdout.splitlines()
        found = [line for line in out if f'"{CATALOG_HOST}"' in line and "GET /items" in line]
        return found[-count:] if len(found) >= count else None
    return sb.wait_for(lines, timeout=10, what=f"{count} gateway access-log lines")


def upstream(line: str) -> str:
    """The IP of %UPSTREAM_HOST% (the quoted field after the authority)."""
    match = re.search(rf'"{re.escape(CATALOG_HOST)}" "([^"]*)"', line)
    return match.group(1).rsplit(":", 1)[0] if match else ""
