"""End to end through REAL kubectl against the sandbox (real Envoys, the sandbox istiod).

Each test undoes what it changes (in `finally`), and a paused Envoy is always SIGCONTed, so
the tests do not depend on their order."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess

import pytest

from sandbox.testing import MeshCli as Mesh
from sandbox.testing import SCENARIOS, envoy_pid

pytestmark = pytest.mark.timeout(180)
# Why tests run on the sandbox istiod only (skipped with `--backend istio`)
MERGED_HOSTS = ("two VirtualServices for one host on one gateway: real istiod merges them into "
                "one virtual host (pilot/pkg/networking/core/gateway.go vHostDedupMap); only the "
                "sandbox istiod sends the duplicate domain Envoy rejects")
NACK_FAULT = ("the NACK is made by the annotation sandbox.kubectl-mesh.io/invalid, which only "
              "the sandbox istiod turns into an invalid cluster")
GATEWAY_PREFIX = "istio-ingressgateway-"
VS_PATCH = '[{"op":"add","path":"/spec/http/0/timeout","value":"%s"}]'


@pytest.fixture(scope="module")
def mesh(sandbox) -> Mesh:
    m = Mesh(sandbox)
    _wait_synced(m)
    return m


def _wait_synced(mesh, timeout="30s"):
    out = mesh("sync", "--wait", "--timeout", timeout)
    assert out.returncode == 0, out.stderr


def _rows(stdout: str) -> dict[str, str]:
    return {line.split()[0]: line for line in stdout.splitlines()[1:] if line.strip()}


def _envoy_pid(sandbox, prefix: str) -> int:
    for pod in sandbox.status():
        if pod["name"].startswith(prefix):
            return envoy_pid(next(c["pid"] for c in pod["containers"]
                                  if c["name"] == "istio-proxy"))
    raise AssertionError(f"no pod {prefix}*")


@contextlib.contextmanager
def paused(pid: int):
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _patch_timeout(sandbox, value):
    sandbox.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type", "json",
                    "-p", VS_PATCH % value)


def _undo_timeout(sandbox):
    sandbox.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type", "json",
                    "-p", '[{"op":"remove","path":"/spec/http/0/timeout"}]', check=False)


def test_every_proxy_synced_after_up(mesh, sandbox):
    out = mesh("sync")
    assert out.returncode == 0, out.stderr
    rows = _rows(out.stdout)
    meshed = [p["name"] for p in sandbox.status()
              if any(c["name"] == "istio-proxy" for c in p["containers"])]
    assert sorted(n.rsplit(".", 1)[0] for n in rows) == sorted(meshed)
    assert out.stdout.split()[:9] == ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD",
                                      "VERSION", rows and next(iter(rows))]
    assert all(line.count("SYNCED (") == 4 for line in rows.values())
    assert "ECDS" not in out.stdout  # nobody subscribed: the column is dropped


def test_paused_proxy_goes_stale_and_wait_returns_after_resume(mesh, sandbox):
    pid = _envoy_pid(sandbox, GATEWAY_PREFIX)
    waiter = None
    try:
        with paused(pid):
            _patch_timeout(sandbox, "3s")
            first = sandbox.wait_for(lambda: (o := mesh("sync")).returncode == 7 and o,
                                     timeout=15, what="STALE")
            gw = lambda o: next(v for k, v in _rows(o.stdout).items()  # noqa: E731
                                if k.startswith(GATEWAY_PREFIX))
            age = lambda line: int(line.split("STALE (")[1].split("s)")[0])  # noqa: E731

            def older():
                o = mesh("sync")
                return "STALE (" in gw(o) and age(gw(o)) > age(gw(first)) and o

            second = sandbox.wait_for(older, timeout=15, interval=0.5, what="an older STALE age")
            assert "STALE (" in gw(first) and "STALE (" in gw(second)
            assert age(gw(second)) > age(gw(first))  # a growing age
            others = [v for k, v in _rows(second.stdout).items() if not k.startswith(GATEWAY_PREFIX)]
            assert others and all("STALE" not in v and v.count("SYNCED") == 4 for v in others)
            assert "1 of 4 proxies not SYNCED" in second.stderr
            waiter = subprocess.Popen(["kubectl", "mesh", "sync", "--wait", "--timeout", "40s"],
                                      env=mesh.env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            progress = waiter.stderr.readline()  # blocks until the first poll reports
            assert "waiting" in progress and "RDS STALE" in progress, progress
            # the waiter repeats an unchanged progress line every PROGRESS_EVERY (5 s) of
            # polls: the next one shows it went on polling rather than returning
            again = waiter.stderr.readline()
            assert "waiting" in again and "RDS STALE" in again, again
            assert waiter.poll() is None, "--wait returned while a proxy was paused"
        out, err = waiter.communicate(timeout=40)
        assert waiter.returncode == 0, err
        assert "4/4 proxies SYNCED" in err
        assert all(v.count("SYNCED") == 4 for v in _rows(out).values())
    finally:
        if waiter is not None and waiter.poll() is None:
            waiter.kill()
            waiter.communicate()
        _undo_timeout(sandbox)
        _wait_synced(mesh)


@pytest.mark.slow  # waits out --wait's timeout
def test_wait_times_out_on_a_paused_proxy(mesh, sandbox):
    pid = _envoy_pid(sandbox, GATEWAY_PREFIX)
    try:
        with paused(pid):
            _patch_timeout(sandbox, "5s")
            out = mesh("sync", "-n", "istio-system", "--wait", "--timeout", "2s")
            assert out.returncode == 7
            assert "timed out after 2s" in out.stderr and "RDS STALE" in out.stderr
            # --verify cannot ask a paused Envoy: it says so instead of hanging
            out = mesh("sync", "-n", "istio-system", "--verify", "--request-timeout", "1s")
            assert out.returncode == 7 and "UNREACHABLE" in out.stdout
            # --diff needs the proxy's config dump: a paused Envoy cannot give one
            out = mesh("sync", "deploy/istio-ingressgateway.istio-system", "--diff",
                       "--request-timeout", "1s")
            assert out.returncode == 5 and "did not answer /config_dump" in out.stderr
    finally:
        _undo_timeout(sandbox)
        _wait_synced(mesh)


@pytest.mark.sandbox_istiod_only(NACK_FAULT)
def test_cds_nack_is_error_and_verify_sees_it_from_the_proxy(mesh, sandbox):
    sandbox.kubectl("apply", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"))
    try:
        _wait_synced(mesh)
        sandbox.kubectl("annotate", "destinationrule", "catalog", "-n", "istioinaction",
                        "sandbox.kubectl-mesh.io/invalid=true")
        out = sandbox.wait_for(lambda: "ERROR (" in (o := mesh("sync", "-n", "istioinaction")
                                                     ).stdout and o, timeout=15, what="ERROR")
        assert out.returncode == 7
        assert "rejected CDS (NACK): Error adding/updating cluster(s)" in out.stderr
        verify = mesh("sync", "-n", "istioinaction", "--verify", "-o", "json")
        assert verify.returncode == 7
        findings = json.loads(verify.stdout)["findings"]
        cds = [f for f in findings if f.get("type") == "CDS" and f["check"] == "REJECTED"]
        assert len(cds) == 3 and all("update_rejected=" in f["detail"] for f in cds)
        diff = mesh("sync", "deploy/catalog", "-n", "istioinaction", "--diff")
        assert diff.returncode == 7
        assert diff.stdout.startswith("Clusters Don't Match\n--- Istiod Clusters")
        # protojson's spelling, as istioctl shows it
        assert '-    "lbPolicy": "RING_HASH"' in diff.stdout
        assert "Listeners Match" in diff.stdout and "Routes Match" in diff.stdout
    finally:
        sandbox.kubectl("delete", "-f", str(SCENARIOS / "catalog-destinationrule.yaml"),
                        check=False)
        _wait_synced(mesh)


@pytest.mark.sandbox_istiod_only(MERGED_HOSTS)
def test_rds_nack_shows_envoys_message(mesh, sandbox):
    dup = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog-dup, namespace: istioinaction}
spec:
  hosts: [catalog.istioinaction.io]
  gateways: [catalog-gateway]
  http:
  - route:
    - destination: {host: catalog.istioinaction.svc.cluster.local}
"""
    sandbox.kubectl("apply", "-f", "-", input=dup)
    try:
        out = sandbox.wait_for(lambda: "ERROR (" in (o := mesh("sync", "--verify")).stdout and o,
                               timeout=15, what="RDS ERROR")
        assert out.returncode == 7
        assert "Only unique values for domains are permitted" in out.stderr
        line = next(l for l in out.stdout.splitlines() if " RDS " in l and "REJECTED" in l)
        assert line.startswith(GATEWAY_PREFIX) and "update_rejected=1 (http.8080)" in line
    finally:
        sandbox.kubectl("delete", "vs", "catalog-dup", "-n", "istioinaction", check=False)
        _wait_synced(mesh)


def test_in_sync_diff_matches(mesh):
    out = mesh("sync", "deploy/istio-ingressgateway", "-n", "istio-system", "--diff")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Clusters Match\nListeners Match\nRoutes Match\n"
    # ...item by item: istiod's camelCase dump and Envoy's snake_case one are both read
    out = mesh("sync", "deploy/istio-ingressgateway", "-n", "istio-system", "--diff",
               "-o", "json")
    assert out.returncode == 0, out.stderr
    counts = {s["section"]: (s["istiod"], s["envoy"]) for s in json.loads(out.stdout)["sections"]}
    assert all(i == e > 0 for i, e in counts.values()), counts


def test_verify_clean_mesh(mesh):
    out = mesh("sync", "-A", "--verify", "--concurrency", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no problems" in out.stderr
    assert all("(warning)" in line for line in out.stdout.split("\n\n", 1)[1:2][0].splitlines()[1:]) \
        if "\n\n" in out.stdout else True


def test_no_istiod_says_where_it_looked(mesh):
    out = mesh("sync", "--istio-namespace", "nowhere")
    assert out.returncode == 3
    assert "no istiod pod in namespace nowhere with label app=istiod" in out.stderr
    out = mesh("sync", "--revision", "canary")
    assert out.returncode == 3 and "istio.io/rev=canary" in out.stderr


def test_forbidden_port_forward_is_exit_4(mesh, sandbox):
    with sandbox.denied("create pods/portforward@istio-system"):
        out = mesh("sync")
    assert out.returncode == 4
    assert "pods/portforward in namespace istio-system" in out.stderr
