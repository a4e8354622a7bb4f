"""`kubectl mesh accesslog` against the sandbox's real gateway Envoy, through real kubectl.

The story of the default scenario: requests before the DestinationRule get 503 NC; with the
DestinationRule and the 0.5 s timeout, the slow catalog-v2 pod (~1 s) gives 504 UT. The slow
pod is found independently here (timing each catalog-v2 pod directly) and compared with what
`--by upstream` names. Tests run in file order and share one sandbox.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import threading
import time

import pytest

from kubectl_mesh.cli import accesslog
from sandbox.testing import SCENARIOS, wait_until

from .conftest import GW, get

SCENARIO_FILES = ("catalog-destinationrule.yaml", "catalog-timeout.yaml")


def start_follow(mesh, *args) -> tuple[subprocess.Popen, list[str], list[str]]:
    """`kubectl mesh accesslog ... -f` in the background, its stdout and stderr lines
    collected as they come; returns once it says it follows (its streams are open)."""
    proc = subprocess.Popen(mesh.argv("accesslog", *GW, "-f", *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=mesh.env())
    out: list[str] = []
    err: list[str] = []
    for stream, sink in ((proc.stdout, out), (proc.stderr, err)):
        threading.Thread(target=lambda s=stream, k=sink: k.extend(iter(s.readline, "")),
                         daemon=True).start()
    deadline = time.monotonic() + 30
    while not any(line.startswith("following ") for line in err):
        assert proc.poll() is None and time.monotonic() < deadline, err
        time.sleep(0.05)
    return proc, out, err


def stop(proc: subprocess.Popen) -> int:
    """Ctrl-C, and the exit code (the process is killed if it does not exit in 10 s)."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def gateway_ips(sandbox) -> dict[str, str]:
    return {p["metadata"]["name"]: p["status"]["podIP"]
            for p in sandbox.pods("istio-system", "app=istio-ingressgateway")
            if p["status"].get("phase") == "Running"}


def in_process(mesh, *args) -> tuple[int, str, str]:
    """`accesslog.main([...])` in this process (no kubectl/interpreter start-up: most checks
    are about data, and the real-kubectl path is exercised by the others)."""
    out, err = io.StringIO(), io.StringIO()
    code = accesslog.main([*GW, "--kubeconfig", str(mesh.sb.kubeconfig), *args], out, err)
    return code, out.getvalue(), err.getvalue()


def records(mesh, *args) -> list[dict]:
    code, out, err = in_process(mesh, "-o", "json", *args)
    assert code == 0, err
    return json.loads(out)


def groups(mesh, by: str) -> list[dict]:
    return records(mesh, "--by", by)["groups"]


@pytest.fixture(scope="module")
def story(sandbox, mesh):
    """NC traffic, then the DestinationRule + timeout, then 30 requests; what the client saw."""
    (ip,) = gateway_ips(sandbox).values()
    before = [get(ip)[0] for _ in range(5)]
    assert before == [503] * 5
    for name in SCENARIO_FILES:
        sandbox.kubectl("apply", "-f", str(SCENARIOS / name))
    sandbox.wait_for(lambda: get(ip)[0] != 503, timeout=30, what="the DestinationRule")
    after = [get(ip)[0] for _ in range(30)]
    # Every request has been answered, but Envoy flushes its access log every second (as
    # pilot-agent starts it) and the lines then pass through the container log: wait until
    # the log stops growing across more than a flush interval, so the tests compare complete
    # snapshots.
    counts: list[int] = []

    def settled() -> bool:
        counts.append(len(records(mesh)))
        return len(counts) > 1 and counts[-1] == counts[-2] >= len(before) + len(after)

    sandbox.wait_for(settled, timeout=30, interval=1.5, what="the access log to settle")
    return {"ip": ip, "before": before, "after": after}


def answers(ip: str) -> bool:
    """The gateway at `ip` listens and routes (its Envoy may still be starting)."""
    try:
        return get(ip)[0] in (200, 504)
    except OSError:
        return False


def slow_catalog_v2_pod(sandbox) -> str:
    """The catalog-v2 pod that answers in ~1 s, timed directly (not through the tool)."""
    timings = {p["metadata"]["name"]: get(p["status"]["podIP"], 3000, "/items")[1]
               for p in sandbox.pods("istioinaction", "app=catalog,version=v2")}
    slow = [name for name, seconds in timings.items() if seconds > 0.8]
    assert len(slow) == 1, timings
    return slow[0]


def _ids(rs) -> set:
    return {r["request_id"] for r in rs}


def test_flags_ut_lists_only_the_504s_and_nc_shows_the_requests_before_the_rule(story, mesh):
    everything = records(mesh)
    assert 504 in story["after"], "the slow pod got no traffic; nothing to check"
    ut = records(mesh, "--flags", "UT")
    later = records(mesh)
    assert ut and all(r["response_code"] == 504 and r["response_flags"] == ["UT"] for r in ut)
    # exactly the 504s: every 504 logged before is listed, and nothing listed is not a 504 in
    # a later snapshot (a request still in flight may be logged between the two reads)
    assert _ids(r for r in everything if r["response_code"] == 504) <= _ids(ut)
    assert _ids(ut) <= _ids(r for r in later if r["response_code"] == 504)
    # every 504 the client saw is in the log (the wait probes may add a few more)
    assert len(ut) >= story["after"].count(504)
    assert all(r["response_code_details"] == "response_timeout" and r["duration"] >= 450
               for r in ut)
    nc = records(mesh, "--flags", "NC")
    assert len(nc) >= 5 and all(r["response_code"] == 503 and r["upstream_host"] is None
                                for r in nc)
    # NC requests all came before the first routed one
    first_routed = min(r["start_time"] for r in everything if r["upstream_host"])
    assert max(r["start_time"] for r in nc) < first_routed
    # the long flag name and --code select the same requests
    for same in (records(mesh, "--flags", "UpstreamRequestTimeout"), records(mesh, "--code", "504")):
        latest = records(mesh)
        assert _ids(ut) <= _ids(same) <= _ids(r for r in latest if r["response_code"] == 504)
    table = mesh("accesslog", *GW, "--flags", "UT")
    assert table.returncode == 0
    head, *rows = table.stdout.split("\n\nFLAGS:\n")[0].splitlines()
    assert head.split() == ["TIME", "POD", "CODE", "FLAGS", "METHOD", "AUTHORITY", "PATH",
                            "DURATION", "UPSTREAM"]
    assert len(rows) == len(ut) and all(" 504 " in row and " UT " in row for row in rows)
    assert "UT  upstream request timeout – decided by the proxy (Envoy)" in table.stdout


def test_by_upstream_names_the_slow_pod_with_the_highest_p99_and_all_the_ut(story, sandbox,
                                                                            mesh):
    slow = slow_catalog_v2_pod(sandbox)
    out = mesh("accesslog", *GW, "--by", "upstream", "-o", "json")
    assert out.returncode == 0, out.stderr
    groups = json.loads(out.stdout)["groups"]
    by_label = {g["label"]: g for g in groups}
    slow_label = f"{slow}.istioinaction"
    assert slow_label in by_label, by_label.keys()
    total_ut = sum(g["flags"].get("UT", 0) for g in groups)
    assert total_ut > 0 and by_label[slow_label]["flags"].get("UT") == total_ut
    routed = [g for g in groups if g["key"] != "-"]
    assert max(routed, key=lambda g: g["p99Ms"])["label"] == slow_label
    slow_ip = next(p["status"]["podIP"] for p in sandbox.pods("istioinaction")
                   if p["metadata"]["name"] == slow)
    assert by_label[slow_label]["key"] == f"{slow_ip}:3000"
    # NC requests had no upstream: their own group, all errors
    assert by_label["-"]["flags"] == {"NC": by_label["-"]["count"]}
    assert by_label["-"]["errorRate"] == 1.0
    table = mesh("accesslog", *GW, "--by", "upstream")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["UPSTREAM", "COUNT", "ERRORS", "ERR%", "P50", "P99", "FLAGS"]
    assert any(line.startswith(slow_label) and line.rstrip().endswith("UT") for line in lines)


def test_by_flag_code_and_cluster(story, mesh):
    flags = {g["key"]: g for g in groups(mesh, "flag")}
    assert {"NC", "UT", "-"} <= set(flags) and flags["UT"]["errorRate"] == 1.0
    codes = {g["key"] for g in groups(mesh, "code")}
    assert {"503", "504", "200"} <= codes
    clusters = {g["key"] for g in groups(mesh, "cluster")}
    assert "outbound|80|version-v2|catalog.istioinaction.svc.cluster.local" in clusters


def test_tail_and_since(story, mesh):
    everything = records(mesh)
    tail = records(mesh, "--tail", "3")
    assert 0 < len(tail) <= 3 and tail == everything[-len(tail):]
    # Once the newest line is more than 6 s old, --since 6s matches nothing (the deadline
    # leaves wide margins: on a loaded 2-core machine starting the command alone takes seconds)
    code, out, err = wait_until(lambda: (r := in_process(mesh, "--since", "6s"))[1] == "" and r,
                                timeout=20, interval=0.5, what="--since 6s to match no line")
    assert code == 0 and out == "" and "no matching requests" in err
    statuses = [get(story["ip"])[0] for _ in range(3)]
    # Envoy flushes its access log every second and the line then travels through the
    # container log: poll instead of expecting it the instant the response arrives
    deadline = time.monotonic() + 10
    while len(recent := records(mesh, "--since", "6s")) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [r["response_code"] for r in recent] == statuses


def test_follow_prints_rows_as_they_come_and_ctrl_c_exits_130(story, mesh):
    proc, lines, err = start_follow(mesh, "--tail", "0")
    try:
        path = "/items?follow-test"  # only this test's requests have it
        statuses = [get(story["ip"], path=path)[0] for _ in range(3)]
        deadline = time.monotonic() + 10
        while len(lines) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lines[0].split()[:3] == ["TIME", "POD", "CODE"]
        # --tail 0: nothing old is shown, the first rows are the requests sent since
        assert all(path in line for line in lines[1:4]), lines
        assert [int(line.split()[2]) for line in lines[1:4]] == statuses
        assert proc.poll() is None  # still following
    finally:
        code = stop(proc)
    assert code == 130
    assert not any("Traceback" in line for line in err)


def test_explain_usage_errors_and_a_target_without_sidecar(mesh):
    ut = mesh("accesslog", "--explain", "UT")
    assert ut.returncode == 0
    assert ut.stdout.startswith("UT  upstream request timeout – decided by the proxy (Envoy)")
    everything = mesh("accesslog", "--explain", "-o", "json")
    data = json.loads(everything.stdout)
    assert len(data) >= 26 and {d["decidedBy"] for d in data} >= {"proxy", "upstream",
                                                                   "downstream", "policy"}
    for bad in (("--code", "6xx"), ("--flags", "UT,BOGUS"), ("--slower-than", "soon"),
                ("--by", "pod"), ("-f", "--by", "upstream"), ("--tail", "x")):
        out = mesh("accesslog", *GW, *bad)
        assert out.returncode == 2, (bad, out.stderr)
        assert "Traceback" not in out.stderr and out.stdout == ""
    assert mesh("accesslog", "--explain", "XX").returncode == 2
    nosidecar = mesh("accesslog", "deploy/istiod", "-n", "istio-system")
    assert nosidecar.returncode == 3
    assert "has no istio-proxy container" in nosidecar.stderr
    missing = mesh("accesslog", "deploy/nope", "-n", "istio-system")
    assert missing.returncode == 3


def test_rbac_without_pods_log_is_4_and_without_cluster_list_the_names_still_resolve(
        story, sandbox, mesh):
    def as_user(user, deny, *args):
        kubeconfig = sandbox.add_user(user, deny)  # RBAC on either backend
        out, err = io.StringIO(), io.StringIO()
        code = accesslog.main([*GW, "--kubeconfig", str(kubeconfig), *args], out, err)
        return code, out.getvalue(), err.getvalue()

    code, out, err = as_user("no-logs", ["get pods/log"])
    assert code == 4 and out == ""
    assert "cannot get pods/log in namespace istio-system" in err
    code, out, err = as_user("ns-only", ["list pods@"], "--by", "upstream", "-o", "json")
    assert code == 0 and "warning" not in err, err
    labels = {g["label"] for g in json.loads(out)["groups"]}
    assert f"{slow_catalog_v2_pod(sandbox)}.istioinaction" in labels


@pytest.mark.slow  # scales the gateway to two pods and back
def test_two_gateway_pods_are_merged_by_time(story, sandbox, mesh):
    sandbox.kubectl("scale", "deploy/istio-ingressgateway", "-n", "istio-system",
                    "--replicas=2")
    try:
        ips = sandbox.wait_for(lambda: len(g := gateway_ips(sandbox)) == 2 and g, timeout=30,
                               what="two gateway pods")
        for ip in ips.values():
            sandbox.wait_for(lambda: answers(ip), timeout=30, what=f"gateway {ip} routing")
        path = "/items?merge-test"  # only this test's requests match --path
        follow, out, err = start_follow(mesh, "--path", path, "-o", "json")
        sent = {name: 0 for name in ips}
        for i in range(12):
            name = sorted(ips)[i % 2]
            get(ips[name], path=path)
            sent[name] += 1
        deadline = time.monotonic() + 10
        while len(out) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stop(follow) == 130, err
        followed = [json.loads(line) for line in out]
        assert {r["pod"] for r in followed} == set(ips)
        assert sorted(r["start_time"] for r in followed) == [r["start_time"] for r in followed]
        merged = records(mesh, "--path", path)
        assert {name: sum(r["pod"] == name for r in merged) for name in ips} == sent
        assert [r["start_time"] for r in merged] == sorted(r["start_time"] for r in merged)
        assert merged == followed
    finally:
        sandbox.kubectl("scale", "deploy/istio-ingressgateway", "-n", "istio-system",
                        "--replicas=1")
        # the second pod terminates gracefully (Running until its kubelet has stopped it):
        # the next test starts from one gateway pod
        sandbox.wait_for(lambda: len(sandbox.pods("istio-system", "app=istio-ingressgateway"))
                         == 1, timeout=60, what="one gateway pod again")


def test_follow_of_a_workload_takes_in_pods_that_start_later_and_lets_go_of_deleted_ones(
        story, sandbox, mesh):
    """`-f deploy/x` while the deployment scales up: the new pod joins (said on stderr) and
    its requests are printed; scaled down again, it leaves, and the follow goes on."""
    (first,) = gateway_ips(sandbox)
    path = "/items?scale-test"
    follow, out, err = start_follow(mesh, "--path", path, "-o", "json")
    try:
        sandbox.kubectl("scale", "deploy/istio-ingressgateway", "-n", "istio-system",
                        "--replicas=2")
        ips = sandbox.wait_for(lambda: len(g := gateway_ips(sandbox)) == 2 and g, timeout=30,
                               what="a second gateway pod")
        (new,) = set(ips) - {first}
        sandbox.wait_for(lambda: answers(ips[new]), timeout=30, what=f"gateway {new} routing")
        # sent as soon as the pod answers, maybe before the plugin saw it: not lost either
        for _ in range(3):
            get(ips[new], path=path)
        get(ips[first], path=path)
        sandbox.wait_for(lambda: len(out) >= 4, timeout=30, what=f"4 rows, got {out}")
        pods = [json.loads(line)["pod"] for line in out]
        assert sorted(pods) == sorted([new] * 3 + [first]), pods
        assert f"pod {new}.istio-system joined: following its istio-proxy log too\n" in err

        sandbox.kubectl("scale", "deploy/istio-ingressgateway", "-n", "istio-system",
                        "--replicas=1")
        sandbox.wait_for(lambda: any(line.startswith(f"pod {new}.istio-system left")
                                     for line in err), timeout=30, what=f"{new} leaving: {err}")
        assert follow.poll() is None  # still following the pod that is left
        get(ips[first], path=path)
        sandbox.wait_for(lambda: len(out) >= 5, timeout=15, what=f"a 5th row, got {out}")
        assert json.loads(out[4])["pod"] == first
    finally:
        code = stop(follow)
        sandbox.kubectl("scale", "deploy/istio-ingressgateway", "-n", "istio-system",
                        "--replicas=1")
    assert code == 130, err
    assert not any("Traceback" in line or line.startswith("warning") for line in err), err


def test_follow_without_watch_permission_says_so_once_and_follows_the_pods_it_has(
        story, sandbox, mesh):
    (first,) = gateway_ips(sandbox)
    path = "/items?no-watch-test"
    with sandbox.denied("watch pods@istio-system"):
        follow, out, err = start_follow(mesh, "--path", path, "-o", "json")
        try:
            sandbox.wait_for(lambda: any(line.startswith("warning:") for line in err),
                             timeout=15, what=f"the warning: {err}")
            get(gateway_ips(sandbox)[first], path=path)
            sandbox.wait_for(lambda: len(out) >= 1, timeout=15, what="the row")
        finally:
            code = stop(follow)
    assert code == 130, err
    warnings = [line for line in err if line.startswith("warning:")]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("warning: cannot watch pods in namespace istio-system: ask "
                                  "for RBAC verb watch on pods")
    assert warnings[0].endswith("; pods that start from now on are not followed\n")
    assert json.loads(out[0])["pod"] == first
