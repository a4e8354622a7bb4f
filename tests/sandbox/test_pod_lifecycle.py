"""Pods end as a kubelet ends them: restartPolicy Always / OnFailure / Never, the phases
Succeeded and Failed, and activeDeadlineSeconds (DeadlineExceeded)."""

from __future__ import annotations

import json

import pytest
import yaml

from sandbox.podlifecycle import ContainerState, pod_phase, should_restart
from sandbox.testing import pid_alive


@pytest.mark.parametrize("container,pod_policy,exit_code,expected", [
    ({}, "Always", 0, True),
    ({}, None, 0, True),
    ({}, "OnFailure", 0, False),
    ({}, "OnFailure", 2, True),
    ({}, "Never", 2, False),
    ({"restartPolicy": "Never"}, "Always", 1, False),
    ({"restartPolicy": "OnFailure"}, "Never", 1, True),
    ({"restartPolicy": "Never", "restartPolicyRules": [
        {"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}]}, "Always", 42, True),
    ({"restartPolicy": "Never", "restartPolicyRules": [
        {"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}]}, "Always", 1, False),
    ({"restartPolicy": "Always", "restartPolicyRules": [
        {"action": "Restart", "exitCodes": {"operator": "NotIn", "values": [0]}}]}, "Never", 0, True),
    ({"restartPolicyRules": [
        {"action": "Restart", "exitCodes": {"operator": "In", "values": [1]}}]}, "Never", 1, False),
], ids=["always-ok", "default-always", "onfailure-ok", "onfailure-fail", "never-fail",
        "container-never", "container-onfailure", "rule-in", "rule-no-match", "rule-notin",
        "rules-need-a-container-policy"])
def test_should_restart_like_the_kubelet(container, pod_policy, exit_code, expected):
    spec = {"restartPolicy": pod_policy} if pod_policy else {}
    assert should_restart(container, spec, exit_code) is expected


def _spec(policy: str, *names: str) -> dict:
    return {"restartPolicy": policy, "containers": [{"name": n} for n in names]}


@pytest.mark.parametrize("policy,states,expected", [
    ("Never", [("a", False, 0), ("b", False, 0)], "Succeeded"),
    ("Never", [("a", False, 0), ("b", False, 1)], "Failed"),
    ("Never", [("a", False, 0), ("b", True, None)], "Running"),
    ("OnFailure", [("a", False, 0)], "Succeeded"),
    ("OnFailure", [("a", False, 1)], "Running"),
    ("Always", [("a", False, 0)], "Running"),
    ("Never", [("a", False, None)], "Pending"),
], ids=["never-all-ok", "never-one-failed", "never-one-running", "onfailure-ok",
        "onfailure-restarting", "always-restarting", "not-started"])
def test_pod_phase_like_the_kubelet(policy, states, expected):
    spec = _spec(policy, *(name for name, _, _ in states))
    assert pod_phase(spec, [ContainerState(*s) for s in states]) == expected


# -- end to end: real kubectl, real processes

def _pod(sandbox, name: str) -> dict:
    return json.loads(sandbox.kubectl("get", "pod", name, "-o", "json").stdout)


def _phase_becomes(sandbox, name: str, phase: str, timeout: float = 20) -> dict:
    return sandbox.wait_for(lambda: (lambda p: p if p["status"].get("phase") == phase else None)(
        _pod(sandbox, name)), timeout=timeout, what=f"pod {name} {phase}")


def _terminated(pod: dict) -> dict:
    return pod["status"]["containerStatuses"][0]["state"].get("terminated") or {}


@pytest.fixture
def run(sandbox):
    """`run(name, policy, script)`: a busybox pod in `default` running `sh -c script`;
    deleted afterwards."""
    names = []

    def start(name: str, policy: str, script: str) -> None:
        names.append(name)
        sandbox.kubectl("run", name, "--image", "busybox", "--restart", policy, "--command",
                        "--", "sh", "-c", script)

    yield start
    for name in names:
        sandbox.kubectl("delete", "pod", name, "--grace-period=0", "--wait=false", check=False)


@pytest.mark.slow  # waits for pods to end
def test_never_ends_succeeded_or_failed_and_runs_once(sandbox, run):
    run("never-ok", "Never", "echo ran")
    run("never-fails", "Never", "echo ran; exit 3")
    done = _phase_becomes(sandbox, "never-ok", "Succeeded")
    assert _terminated(done)["exitCode"] == 0 and _terminated(done)["reason"] == "Completed"
    failed = _phase_becomes(sandbox, "never-fails", "Failed")
    assert (_terminated(failed)["exitCode"], _terminated(failed)["reason"]) == (3, "Error")
    for name in ("never-ok", "never-fails"):
        pod = _pod(sandbox, name)
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
        assert pod["status"]["containerStatuses"][0]["lastState"] == {}
        assert sandbox.kubectl("logs", name).stdout == "ran\n"
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False"
    refused = sandbox.kubectl("exec", "never-ok", "--", "true", check=False)
    assert refused.returncode != 0 and "completed pod" in refused.stderr


@pytest.mark.slow  # waits for restarts
def test_onfailure_restarts_until_success_and_always_restarts_success(sandbox, run):
    # the container's directory outlives its runs: the first run fails, the second succeeds
    run("on-failure", "OnFailure", "echo run; [ -e ran-once ] && exit 0; touch ran-once; exit 1")
    run("always", "Always", "echo run; exit 0")
    done = _phase_becomes(sandbox, "on-failure", "Succeeded")
    assert done["status"]["containerStatuses"][0]["restartCount"] == 1
    assert _terminated(done)["exitCode"] == 0
    # the first run's end, as a kubelet keeps it in lastState (lastTerminationState)
    last = done["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (1, "Error")
    assert last["containerID"] != _terminated(done)["containerID"]
    # status writes leave the generation alone, and the kubelet observed generation 1
    assert done["metadata"]["generation"] == 1 and done["status"]["observedGeneration"] == 1
    assert sandbox.kubectl("logs", "on-failure").stdout == "run\nrun\n"
    again = sandbox.wait_for(lambda: (lambda p: p if p["status"]["containerStatuses"][0]
                                      ["restartCount"] >= 2 else None)(_pod(sandbox, "always")),
                             what="an Always container that exits 0 restarted")
    assert again["status"]["phase"] == "Running"


@pytest.mark.slow  # waits out a deadline
def test_active_deadline_kills_the_pod_and_fails_it(sandbox, tmp_path):
    manifest = tmp_path / "deadline.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "deadline", "namespace": "default"},
        "spec": {"restartPolicy": "Never", "activeDeadlineSeconds": 3,
                 "containers": [{"name": "sleeper", "image": "busybox",
                                 "command": ["sleep", "300"]}]}}))
    sandbox.kubectl("apply", "-f", str(manifest))
    try:
        pid = sandbox.wait_for(lambda: next((c["pid"] for p in sandbox.status()
                                             if p["name"] == "deadline"
                                             for c in p["containers"] if c["pid"]), None),
                               what="the sleeper's pid")
        failed = _phase_becomes(sandbox, "deadline", "Failed", timeout=15)
        assert failed["status"]["reason"] == "DeadlineExceeded"
        assert failed["status"]["message"] == ("Pod was active on the node longer than the "
                                               "specified deadline")
        sandbox.wait_for(lambda: _terminated(_pod(sandbox, "deadline")).get("exitCode") == 143,
                         what="the sleeper killed by SIGTERM (exit 143)")
        assert not pid_alive(pid)
        assert _pod(sandbox, "deadline")["status"]["phase"] == "Failed"  # and it stays so
    finally:
        sandbox.kubectl("delete", "pod", "deadline", "--grace-period=0", "--wait=false",
                        check=False)


@pytest.mark.parametrize("spec,message", [
    ({"activeDeadlineSeconds": 0}, 'The Pod "invalid" is invalid: spec.activeDeadlineSeconds: '
     "Invalid value: 0: must be between 1 and 2147483647, inclusive"),  # a 422
    ({"activeDeadlineSeconds": "soon"}, 'Error from server (BadRequest): error when creating '
     '"STDIN": Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string '
     "into Go struct field PodSpec.spec.activeDeadlineSeconds of type int64"),
    ({"restartPolicy": "Sometimes"}, 'The Pod "invalid" is invalid: spec.restartPolicy: '
     'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'),
], ids=["deadline-0", "deadline-string", "restart-policy"])
def test_the_api_refuses_what_the_kubelet_could_not_act_on(sandbox, spec, message):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "invalid"},
           "spec": {**spec, "containers": [{"name": "c", "image": "busybox",
                                            "command": ["sleep", "300"]}]}}
    out = sandbox.kubectl("create", "-f", "-", "-o", "name", input=json.dumps(pod), check=False)
    assert (out.returncode, out.stderr.strip()) == (1, message)
    assert "pod/invalid" not in sandbox.kubectl("get", "pods", "-o", "name").stdout


@pytest.mark.slow  # waits out a deadline
def test_the_deadline_may_be_lowered_on_a_running_pod_but_not_raised(sandbox, run):
    run("lowered", "Never", "sleep 300")
    _phase_becomes(sandbox, "lowered", "Running")
    sandbox.kubectl("patch", "pod", "lowered", "-p", '{"spec":{"activeDeadlineSeconds":600}}')
    raised = sandbox.kubectl("patch", "pod", "lowered", "-p",
                             '{"spec":{"activeDeadlineSeconds":900}}', check=False)
    assert raised.returncode == 1
    assert "must be less than or equal to previous value" in raised.stderr
    sandbox.kubectl("patch", "pod", "lowered", "-p", '{"spec":{"activeDeadlineSeconds":1}}')
    failed = _phase_becomes(sandbox, "lowered", "Failed", timeout=15)
    assert failed["status"]["reason"] == "DeadlineExceeded"


def _init_pod(name: str, init_script: str, policy: str = "Always") -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"restartPolicy": policy, "initContainers": [
                           {"name": "setup", "image": "busybox",
                            "command": ["sh", "-c", init_script]}],
                           "containers": [{"name": "main", "image": "busybox",
                                           "command": ["sh", "-c", "echo main; sleep 600"]}]}})


def test_init_containers_run_to_completion_before_the_containers(sandbox):
    """As a kubelet: the init container runs first and alone (Initialized False, the main
    container waiting with PodInitializing), then the main container starts; the completed
    init container is reported terminated and ready (pkg/kubelet/status/generate.go)."""
    sandbox.kubectl("apply", "-f", "-", input=_init_pod(
        "with-init", "echo init; while [ ! -e go ]; do sleep 0.1; done"))
    try:
        def initializing():
            pod = _pod(sandbox, "with-init")
            init = (pod["status"].get("initContainerStatuses") or [{}])[0]
            return "running" in init.get("state", {}) and pod
        pod = sandbox.wait_for(initializing, timeout=20, what="init container running")
        assert pod["status"]["phase"] == "Pending"
        conditions = {c["type"]: c for c in pod["status"]["conditions"]}
        assert conditions["Initialized"]["status"] == "False"
        assert conditions["Initialized"]["reason"] == "ContainersNotInitialized"
        assert conditions["Initialized"]["message"] == "containers with incomplete status: [setup]"
        main = pod["status"]["containerStatuses"][0]
        assert main["state"]["waiting"]["reason"] == "PodInitializing"
        assert sandbox.kubectl("logs", "with-init", "-c", "setup").stdout == "init\n"
        waiting = sandbox.kubectl("logs", "with-init", "-c", "main", check=False)
        assert waiting.returncode != 0
        assert ('container "main" in pod "with-init" is waiting to start: PodInitializing'
                in waiting.stderr)
        (sandbox.state / "pods" / "default" / "with-init" / "setup" / "go").touch()
        pod = _phase_becomes(sandbox, "with-init", "Running")
        init = pod["status"]["initContainerStatuses"][0]
        assert init["state"]["terminated"]["reason"] == "Completed" and init["ready"] is True
        assert [c["type"] for c in pod["status"]["conditions"]] == [
            "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
            "PodScheduled"]
        assert sandbox.wait_for(lambda: sandbox.kubectl("logs", "with-init", "-c", "main")
                                .stdout == "main\n", timeout=10, what="main's log")
    finally:
        sandbox.kubectl("delete", "pod", "with-init", "--grace-period=0", "--wait=false",
                        check=False)


def test_a_failed_init_container_fails_a_never_pod(sandbox):
    sandbox.kubectl("apply", "-f", "-", input=_init_pod("init-fails", "exit 7", "Never"))
    try:
        pod = _phase_becomes(sandbox, "init-fails", "Failed")
        init = pod["status"]["initContainerStatuses"][0]
        assert init["state"]["terminated"]["exitCode"] == 7 and init["restartCount"] == 0
        assert "waiting" in pod["status"]["containerStatuses"][0]["state"]
    finally:
        sandbox.kubectl("delete", "pod", "init-fails", "--grace-period=0", "--wait=false",
                        check=False)


def test_a_field_selector_watch_sees_pods_leave_as_deleted(sandbox):
    """A watch with a field selector sees an object that starts matching as ADDED and one
    that stops matching as DELETED, as the real API server's watch cache sends them
    (tests/real/test_kubelet.py asks the real one the same)."""
    from sandbox.testing import WatchRecorder, kubectl_binary
    rv = json.loads(sandbox.kubectl("get", "--raw", "/api/v1/namespaces/default/pods").stdout)[
        "metadata"]["resourceVersion"]
    watch = WatchRecorder(kubectl_binary(), "/api/v1/namespaces/default/pods?watch=1&"
                          f"fieldSelector=status.phase%3DPending&resourceVersion={rv}",
                          env=sandbox.env())
    try:
        sandbox.kubectl("run", "leaves-pending", "--image=sandbox/app")
        _phase_becomes(sandbox, "leaves-pending", "Running")
        events = sandbox.wait_for(lambda: (lambda e: e if "DELETED" in e else None)(
            watch.of("default/leaves-pending")), timeout=20, what="DELETED when it leaves Pending")
        assert events[0] == "ADDED" and events[-1] == "DELETED"
        (gone,) = [o for t, n, o in watch.events if t == "DELETED" and n == "default/leaves-pending"]
        assert gone["status"]["phase"] == "Pending"  # the previous content, as the cacher sends
    finally:
        watch.stop()
        sandbox.kubectl("delete", "pod", "leaves-pending", "--grace-period=0", "--wait=false",
                        check=False)
