"""Where tcpdump runs for one pod: Setup, the exec target, Cleanup.

- `ExecBackend`: a container of the pod that ships tcpdump and may capture;
- `EphemeralBackend`: an ephemeral debug container (NET_RAW, `--image`) targeting a
  container of the pod. Kubernetes cannot remove it afterwards, so it ends by itself: its
  main process is the debug gate (`gate_command`);
- `NodeBackend`: a privileged hostPID debug pod on the pod's node (`sidecar.istio.io/inject:
  "false"`, `restartPolicy: Never`, `activeDeadlineSeconds`), same gate; the target
  container's host PID is found from its containerID (`nodepid.py`), tcpdump run with
  `nsenter -t PID -n` in the pod's network namespace; deleted at cleanup.

The debug gate: the container has `stdin`+`stdinOnce`, and we stay attached to its stdin for
the whole capture. Its main process waits up to `attach_window` seconds for the one byte our
attach sends (so a container nobody attached to - the client died during setup, `create
pods/attach` denied - ends by itself), then reads stdin until EOF, which the runtime gives it
when our attach detaches - on purpose or because we died, even by `kill -9` - and ends; the
runtime then stops everything exec'd in it. `timeout LIFETIME` bounds it in any case.
"""

from __future__ import annotations

import math
import secrets
import threading
import time

from kubectl_mesh.capture import kubewrite, nodepid
from kubectl_mesh.capture.options import IMAGE_ENV, SniffOptions
from kubectl_mesh.capture.tcpdump import buffer_per_pod
from kubectl_mesh.errors import ForbiddenError, MeshError, NotFoundError, UnreachableError
from kubectl_mesh.kube.execstream import ExecStream, open_attach

PROXY = "istio-proxy"
DEBUG_GATE = 'timeout "$1" head -c 1 >/dev/null && exec timeout "$2" cat >/dev/null'
ATTACHED = b"."  # what our attach sends the gate
ENDING = 10.0  # seconds a detached gate's container may take to be reported terminated
DEFAULT_CAPS = {"NET_RAW"}  # of the container runtime's defaults, the one capture needs
IMAGE_PULL = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
# Waiting reasons that are progress, not trouble (pkg/kubelet/kuberuntime and kubelet_pods.go);
# any other waiting reason the kubelet reports ends the setup with it.
STARTING = ("ContainerCreating", "PodInitializing", "")


class SetupFailed(MeshError):
    """A backend could not be set up; `auto` tries the next one, explaining why. `waiting`:
    the kubelet's reason when it would not start the container (it never ran)."""

    def __init__(self, message: str, hint: str | None = None, waiting: str = ""):
        super().__init__(message, hint)
        self.waiting = waiting


class LeftBehind(MeshError):
    """Cleanup could not undo what setup did; the message says what is left and how to
    remove it (exit 1: a change that could not be undone)."""


def gate_command(opts: SniffOptions) -> list[str]:
    """The main process of a debug container: DEBUG_GATE (sh, timeout, head, cat: POSIX and
    busybox alike), its attach window and lifetime as arguments."""
    return ["sh", "-c", DEBUG_GATE, "kubectl-mesh-gate", str(math.ceil(opts.attach_window)),
            str(opts.debug_lifetime)]


def capture_blocker(spec: dict, pod_spec: dict) -> str | None:
    """Why this container cannot open a capture socket, judged from its securityContext."""
    sc = spec.get("securityContext") or {}
    if sc.get("privileged"):
        return None
    caps = sc.get("capabilities") or {}
    dropped = {c.upper().removeprefix("CAP_") for c in caps.get("drop") or []}
    added = {c.upper().removeprefix("CAP_") for c in caps.get("add") or []}
    uid = sc.get("runAsUser", (pod_spec.get("securityContext") or {}).get("runAsUser"))
    if uid not in (None, 0):
        return f"runs as uid {uid} (not root)"
    if ("ALL" in dropped or "NET_RAW" in dropped) and "NET_RAW" not in added:
        return "drops the NET_RAW capability"
    return None


class ExecBackend:
    """tcpdump exec'd straight into one of the pod's containers."""

    mode = "exec"

    def __init__(self, api, namespace: str, pod: str, container: str):
        self.api, self.namespace, self.pod, self.container = api, namespace, pod, container
        self.where = f"container {container}"

    def setup(self, opts: SniffOptions) -> None:
        pass

    def target(self, argv: list[str]) -> tuple[str, str, list[str]]:
        return self.pod, self.container, argv

    def cleanup(self) -> list[str]:
        return []


class _Gated:
    """Holding the stdin of a `cat` gate (attach) for the life of the capture."""

    def __init__(self, notices=None):
        self.notices = notices
        self._attach: ExecStream | None = None
        self._lock = threading.Lock()
        self._window = 0.0  # the gate's attach window, once the container was created

    def _hold(self, config, namespace: str, pod: str, container: str, timeout) -> None:
        attach = open_attach(config, namespace, pod, container=container, stdin=True,
                             timeout=timeout, notices=self.notices)
        with self._lock:
            self._attach = attach
        threading.Thread(target=_drain, args=(attach,), daemon=True, name="sniff-gate").start()
        try:
            attach.send_stdin(ATTACHED)  # the gate holds on until this attach detaches
        except OSError as e:
            raise UnreachableError(f"attach to {container} in pod {pod}.{namespace} ended at "
                                   f"once: {e}") from e

    def _release(self) -> bool:
        with self._lock:
            attach, self._attach = self._attach, None
        if attach is None:
            return False
        attach.close_stdin()
        attach.close()
        return True


def _drain(attach) -> None:
    """Read the attach until it ends; how it ends is cleanup's business (kubectl attach, the
    fallback, raises when kubectl fails after it attached)."""
    try:
        attach.run(lambda _: None, lambda _: None)
    except MeshError:
        pass


class EphemeralBackend(_Gated):
    """An ephemeral container in the pod that shares its network namespace."""

    mode = "ephemeral"

    def __init__(self, api, namespace: str, pod: str, target_container: str, *, notices=None):
        super().__init__(notices)
        self.api, self.namespace, self.pod = api, namespace, pod
        self.target_container = target_container
        self.name = f"kubectl-mesh-sniff-{secrets.token_hex(3)}"
        self.where = f"ephemeral container {self.name}"
        self._added = False
        self._never_ran = ""  # the kubelet's waiting reason, when it would not start it

    def spec(self, opts: SniffOptions) -> dict:
        return {"name": self.name, "image": opts.image, "command": gate_command(opts),
                "stdin": True, "stdinOnce": True, "tty": False,
                "targetContainerName": self.target_container,
                "terminationMessagePolicy": "File",
                # Its own securityContext, explicitly: an ephemeral container inherits the
                # pod's (pkg/kubelet/kuberuntime/security_context.go determineEffectiveSecurity
                # Context), so runAsNonRoot: true would refuse a root tcpdump image
                # (CreateContainerConfigError) and runAsUser: N would run it without its
                # capabilities.
                "securityContext": {"capabilities": {"add": ["NET_RAW"]},
                                    "runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False}}

    def setup(self, opts: SniffOptions) -> None:
        path = kubewrite.pod_path(self.namespace, self.pod, "ephemeralcontainers")
        try:
            kubewrite.request(self.api, "PATCH", path,
                              {"spec": {"ephemeralContainers": [self.spec(opts)]}},
                              "application/strategic-merge-patch+json")
        except kubewrite.PodSecurityRejected as e:
            raise kubewrite.PodSecurityRejected(
                f"Pod Security admission refused ephemeral container {self.name} in pod "
                f"{self.pod}.{self.namespace}: {e.message}", e.level,
                hint=pod_security_hint(self.namespace, e.level, "an ephemeral container with "
                                       "NET_RAW")) from e
        except ForbiddenError as e:
            raise ForbiddenError(e.message, hint="ask for RBAC verb patch on "
                                 "pods/ephemeralcontainers (not in the built-in edit/admin "
                                 "roles), or use --mode exec with a container that has "
                                 "tcpdump") from e
        self._added = True
        self._window = opts.attach_window
        try:
            _wait_running(self.api, self.namespace, self.pod, self.name, opts.setup_timeout,
                          ephemeral=True, image=opts.image)
        except SetupFailed as e:
            self._never_ran = e.waiting
            raise
        self._hold(self.api.config, self.namespace, self.pod, self.name, opts.setup_timeout)

    def target(self, argv: list[str]) -> tuple[str, str, list[str]]:
        return self.pod, self.name, argv

    def cleanup(self) -> list[str]:
        if not self._added:
            return []
        if self._never_ran:  # no process to wait for; were it started later, its gate ends it
            return [f"ephemeral container {self.name} stays in pod {self.pod}.{self.namespace} "
                    f"(Kubernetes cannot remove ephemeral containers); it never ran "
                    f"({self._never_ran}), and if it starts later it ends by itself within "
                    f"{math.ceil(self._window)}s"]
        # Detached, the gate ends at once; never attached, at the end of its attach window.
        wait = ENDING if self._release() else self._window + ENDING
        try:
            ended = _wait_terminated(self.api, self.namespace, self.pod, self.name, wait)
        except MeshError:  # the API server is gone: the gate still ends the process
            ended = False
        state = "its process has ended" if ended else "its process may still be ending"
        return [f"ephemeral container {self.name} stays in pod {self.pod}.{self.namespace} "
                f"(Kubernetes cannot remove ephemeral containers); {state}"]


class NodeBackend(_Gated):
    """A privileged debug pod on the target's node entering its network namespace."""

    mode = "node"

    def __init__(self, api, namespace: str, pod: str, pod_json: dict, container: str, *,
                 notices=None):
        super().__init__(notices)
        self.api, self.namespace, self.pod = api, namespace, pod
        self.pod_json, self.container = pod_json, container
        self.name = f"kubectl-mesh-sniff-{secrets.token_hex(3)}"
        self.where = f"debug pod {self.name} on node {(pod_json.get('spec') or {}).get('nodeName')}"
        self.pid: int | None = None  # the target container's process, as the node sees it
        self._created = False
        self._lifetime = 0

    def manifest(self, opts: SniffOptions) -> dict:
        labels = {"app.kubernetes.io/managed-by": "kubectl-mesh",
                  "sidecar.istio.io/inject": "false"}
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": self.name, "namespace": self.namespace, "labels": labels,
                             "annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": {"nodeName": (self.pod_json.get("spec") or {}).get("nodeName"),
                         "hostNetwork": True, "hostPID": True, "restartPolicy": "Never",
                         # the kubelet kills it then, whatever became of us and the gate
                         "activeDeadlineSeconds": opts.debug_lifetime,
                         "tolerations": [{"operator": "Exists"}],
                         "containers": [{"name": "sniff", "image": opts.image,
                                         "command": gate_command(opts),
                                         "stdin": True, "stdinOnce": True,
                                         "resources": node_pod_resources(opts),
                                         "securityContext": {"privileged": True}}]}}

    def setup(self, opts: SniffOptions) -> None:
        current = self.api.get_pod(self.namespace, self.pod, allow_missing=True)
        if current is None:
            raise NotFoundError(f"pod {self.pod}.{self.namespace} no longer exists")
        self.pod_json = current  # the id of the container's current run (restarts change it)
        container_id = nodepid.running_container_id(current, self.container)
        try:
            kubewrite.request(self.api, "POST", kubewrite.pod_path(self.namespace),
                              self.manifest(opts))
        except kubewrite.PodSecurityRejected as e:
            raise kubewrite.PodSecurityRejected(
                f"Pod Security admission refused debug pod {self.name} in namespace "
                f"{self.namespace}: {e.message}", e.level,
                hint=pod_security_hint(self.namespace, e.level, "a privileged hostPID/"
                                       "hostNetwork debug pod")) from e
        except ForbiddenError as e:
            raise ForbiddenError(e.message, hint=e.hint or "node mode needs `create pods` and a "
                              "namespace whose Pod Security level allows privileged pods") from e
        self._created = True
        self._window, self._lifetime = opts.attach_window, opts.debug_lifetime
        _wait_running(self.api, self.namespace, self.name, "sniff", opts.setup_timeout,
                      ephemeral=False, image=opts.image)
        self._hold(self.api.config, self.namespace, self.name, "sniff", opts.setup_timeout)
        self.pid = nodepid.find_pid(self.api, self.namespace, self.name, "sniff", container_id,
                                    f"container {self.container} of pod {self.pod}."
                                    f"{self.namespace}", opts.setup_timeout,
                                    notices=self.notices)
        self.where += f", entering pid {self.pid} (container {self.container})"

    def target(self, argv: list[str]) -> tuple[str, str, list[str]]:
        if self.pid is None:
            raise SetupFailed(f"{self.where} is not set up")
        return self.name, "sniff", ["nsenter", "-t", str(self.pid), "-n", "--", *argv]

    def cleanup(self) -> list[str]:
        if not self._created:
            return []
        released = self._release()
        try:
            kubewrite.request(self.api, "DELETE", kubewrite.pod_path(self.namespace, self.name),
                              {"gracePeriodSeconds": 0})
        except MeshError as e:
            ending = ("its gate was closed, so its process is ending" if released else
                      "nothing attached to its gate, so its process ends within "
                      f"{math.ceil(self._window)}s")
            raise LeftBehind(
                f"debug pod {self.name}.{self.namespace} (privileged, hostPID) could not be "
                f"deleted: {e}; {ending}, and the kubelet stops it after "
                f"{self._lifetime}s at the latest (activeDeadlineSeconds), but the pod "
                f"stays until deleted", hint=f"kubectl delete pod {self.name} -n "
                f"{self.namespace}") from e
        finally:
            self._created = False
        return [f"debug pod {self.name}.{self.namespace} deleted"]


def pod_security_hint(namespace: str, level: str, what: str) -> str:
    """What to do when the namespace's Pod Security level refuses our capture container."""
    admin = ("have an admin allow the capture (label the namespace "
             "pod-security.kubernetes.io/enforce=privileged for its duration, or exempt it)")
    if level == "restricted":  # every container drops ALL: no exec'd tcpdump can capture
        return f'namespace {namespace} enforces Pod Security "{level}", which forbids {what}; {admin}'
    return (f'namespace {namespace} enforces Pod Security "{level}", which forbids {what}; '
            "alternatives: --mode exec -c CONTAINER (a container of the pod that ships tcpdump "
            f"and runs as root with the default NET_RAW), or {admin}")


def node_pod_resources(opts: SniffOptions) -> dict:
    """Requests and limits, so namespaces with a ResourceQuota or LimitRange admit the node
    debug pod. The capture ring (-B) is kernel memory charged to its cgroup: the memory limit
    leaves room for it."""
    ring_mib = (opts.buffer_bytes or buffer_per_pod(1)) // 2**20
    return {"requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "1", "memory": f"{ring_mib + 128}Mi"}}


def _waiting_hint(reason: str, pod: str, namespace: str) -> str:
    if reason == "CreateContainerConfigError":
        return ("the pod's or namespace's security settings forbid this debug container; "
                "use --mode exec -c CONTAINER with a container that has tcpdump and NET_RAW")
    return f"kubectl describe pod {pod} -n {namespace}"


def _container_status(pod: dict, name: str, ephemeral: bool) -> dict:
    key = "ephemeralContainerStatuses" if ephemeral else "containerStatuses"
    return next((s for s in (pod.get("status") or {}).get(key) or [] if s.get("name") == name), {})


def _wait_running(api, namespace, pod, container, timeout, *, ephemeral, image) -> None:
    deadline = time.monotonic() + timeout
    while True:
        obj = api.get_pod(namespace, pod, allow_missing=True)
        if obj is None:
            raise NotFoundError(f"pod {pod}.{namespace} disappeared during setup")
        state = _container_status(obj, container, ephemeral).get("state") or {}
        if "running" in state:
            return
        waiting = (state.get("waiting") or {})
        reason = waiting.get("reason") or ""
        said = f"{reason}: {waiting['message']}" if waiting.get("message") else reason
        if reason in IMAGE_PULL:
            raise SetupFailed(f"image {image} cannot be pulled for {container} in pod "
                              f"{pod}.{namespace}: {said}",
                              hint=f"pass --image (or set {IMAGE_ENV} once) with an "
                                   "image your nodes can pull that ships tcpdump: a mirror in "
                                   "your registry for rate limits, air gaps and allow-lists",
                              waiting=reason)
        if reason not in STARTING:
            raise SetupFailed(f"{container} in pod {pod}.{namespace} cannot start: {said}",
                              hint=_waiting_hint(reason, pod, namespace), waiting=reason)
        if "terminated" in state:
            term = state["terminated"]
            raise SetupFailed(f"{container} in pod {pod}.{namespace} exited at start "
                              f"({term.get('reason')}, exit code {term.get('exitCode')})",
                              hint=f"kubectl logs {pod} -n {namespace} -c {container}")
        if time.monotonic() > deadline:
            raise UnreachableError(f"{container} in pod {pod}.{namespace} did not start within "
                                   f"{timeout:.0f}s", hint=f"kubectl describe pod {pod} -n "
                                                           f"{namespace}")
        time.sleep(0.2)


def _wait_terminated(api, namespace, pod, container, timeout) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = api.get_pod(namespace, pod, allow_missing=True)
        if obj is None or "terminated" in (_container_status(obj, container, True).get("state")
                                           or {}):
            return True
        time.sleep(0.2)
    return False
