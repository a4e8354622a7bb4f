"""What a kubelet decides when a container ends or a pod runs too long: restart the
container or not, the pod's phase, and whether the pod's active deadline has passed.

Pure functions over the pod's spec and its containers' states, so the runtime's supervisor
stays a loop that applies them. The real decisions (Kubernetes 1.37, where the feature gate
ContainerRestartRules is on by default):
- `should_restart`: pkg/api/v1/pod/util.go `ContainerShouldRestart`, as
  pkg/kubelet/container/helpers.go `ShouldContainerBeRestarted` (used by
  pkg/kubelet/kuberuntime/kuberuntime_manager.go `computePodActions`) applies it to a
  container that has exited;
- `pod_phase`: pkg/kubelet/kubelet_pods.go `getPhase` for regular containers;
- `past_active_deadline`: pkg/kubelet/active_deadline.go `pastActiveDeadline`; a pod past it
  is evicted by `generateAPIPodStatus` (phase Failed, reason DeadlineExceeded, the message
  below) and its containers are killed.
"""

from __future__ import annotations

import dataclasses

DEADLINE_REASON = "DeadlineExceeded"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
TERMINAL = ("Succeeded", "Failed")


@dataclasses.dataclass(frozen=True)
class ContainerState:
    """A regular container as the phase sees it: never started, running, or ended."""
    name: str
    running: bool
    exit_code: int | None  # set once the current run has ended


def _matching_rule(container: dict, exit_code: int) -> dict | None:
    """pkg/api/v1/pod/util.go FindMatchingContainerRestartRule."""
    for rule in container.get("restartPolicyRules") or []:
        codes = rule.get("exitCodes")
        if not codes:
            continue
        matched = exit_code in (codes.get("values") or [])
        if codes.get("operator") == "In" and matched or codes.get("operator") == "NotIn" and not matched:
            return rule
    return None


def _by_policy(policy: str | None, exit_code: int) -> bool | None:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return exit_code != 0
    if policy == "Never":
        return False
    return None


def should_restart(container: dict, pod_spec: dict, exit_code: int) -> bool:
    """Whether an ended container is started again: its own restart rules and
    restartPolicy first, else the pod's restartPolicy (default Always)."""
    if container.get("restartPolicy") is not None:
        rule = _matching_rule(container, exit_code)
        if rule is not None and rule.get("action") == "Restart":
            return True
        decided = _by_policy(container.get("restartPolicy"), exit_code)
        if decided is not None:
            return decided
    decided = _by_policy(pod_spec.get("restartPolicy") or "Always", exit_code)
    return True if decided is None else decided


def pod_phase(pod_spec: dict, states: list[ContainerState]) -> str:
    """The phase of a pod from its regular containers' states."""
    by_name = {s.name: s for s in states}
    running = waiting = stopped = not_restartable = succeeded = 0
    for container in pod_spec.get("containers") or []:
        state = by_name.get(container.get("name"))
        if state is None or (not state.running and state.exit_code is None):
            waiting += 1
        elif state.running:
            running += 1
        else:
            stopped += 1
            not_restartable += not should_restart(container, pod_spec, state.exit_code)
            succeeded += state.exit_code == 0
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if stopped != not_restartable:
            return "Running"  # at least one container is being restarted
        return "Succeeded" if stopped == succeeded else "Failed"
    return "Pending"


def past_active_deadline(pod_spec: dict, started: float | None, now: float) -> bool:
    """Whether the pod, active since `started` (the kubelet's own, unrounded status.startTime;
    a monotonic clock here), has run for its spec.activeDeadlineSeconds or longer."""
    seconds = pod_spec.get("activeDeadlineSeconds")
    if seconds is None or started is None:
        return False
    return now - started >= int(seconds)


def exit_code(returncode: int) -> int:
    """A container's exit code as a runtime reports it: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode
