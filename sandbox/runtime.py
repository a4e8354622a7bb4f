"""Pods as local processes: each pod gets a loopback address, each container a process.

The runtime watches pod events from the store, starts and stops container processes, writes
pod status (Pending → Running → Ready, and Succeeded or Failed once every container has ended
and none is restarted), restarts containers as their restartPolicy says, kills pods past
their activeDeadlineSeconds (`podlifecycle` holds those kubelet decisions), and serves the pod
subresources the API delegates to it (log, exec, attach, portforward).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import itertools
import json
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import threading
import time

from .apiserver.store import Event, NotFound, Store, now_rfc3339
from .behaviour import Behaviours
from .cgroups import CgroupTree, Scope, scope_relpath
from .containerlog import ContainerLog
from .network import AddressPool, PodAddress
from .securitycontext import run_as
from . import bookinfo, images, podconditions, podlifecycle, probes, qos, tools

PROXY = "istio-proxy"
PROXY_INIT = "istio-init"  # the injected init container that sets up the pod's iptables


def now_nano() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass
class Container:
    name: str
    spec: dict
    directory: pathlib.Path
    log: ContainerLog
    process: subprocess.Popen | None = None
    restarts: int = 0
    ready: bool = False
    started_at: str = ""
    ephemeral: bool = False
    init: bool = False  # from spec.initContainers
    exit_code: int | None = None  # of the current run, once it has ended
    finished_at: str = ""
    container_id: str = ""  # status.containerStatuses[].containerID of the current run
    scope: Scope | None = None  # its cgroup while the process may be alive
    # processes `kubectl exec`ed into this run: they live until they end or the container
    # stops, not when the exec client leaves (as on a real node)
    execs: list = dataclasses.field(default_factory=list)
    waiting: tuple[str, str] | None = None  # (reason, message) while it cannot start
    last_state: dict = dataclasses.field(default_factory=dict)  # the previous run's end


@dataclasses.dataclass
class PodProcesses:
    namespace: str
    name: str
    uid: str
    ip: str
    env: dict[str, str]
    address: PodAddress | None = None  # where it is on the network (its IP, how to join it)
    containers: dict[str, Container] = dataclasses.field(default_factory=dict)
    stopping: threading.Event = dataclasses.field(default_factory=threading.Event)
    # held while a container is (re)started and while `stopping` is set: no start slips in
    # after a stop collected the processes to kill
    starting: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    started: float | None = None  # status.startTime, on the monotonic clock
    # set once the pod is Succeeded or Failed: a phase it never leaves (kubelet_pods.go
    # generateAPIPodStatus), with the reason and message the status then carries
    terminal: tuple[str, str, str] | None = None
    qos_class: str = "BestEffort"  # status.qosClass, which the API server set at creation

    initialized: bool = True  # every init container has completed (or started, a sidecar)

    def regular(self) -> list[Container]:
        return [c for c in self.containers.values() if not c.ephemeral and not c.init]

    def inits(self) -> list[Container]:
        return [c for c in self.containers.values() if c.init]

    def kept_ready(self) -> list[Container]:
        """The containers whose readiness makes the pod Ready: regular ones and sidecars."""
        return self.regular() + [c for c in self.inits() if _sidecar(c.spec)]


def _sidecar(spec: dict) -> bool:
    """A restartable init container (native sidecar): started in order, then kept running."""
    return spec.get("restartPolicy") == "Always"


def proxy_type(pod: dict) -> str:
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if c.get("name") == PROXY and "router" in (c.get("args") or []):
            return "router"
    return "sidecar"


def any_image(_image: str) -> bool:
    return True


def preexec(*steps):
    """One preexec_fn running each step that is not None (joining a cgroup, a network
    namespace), or None when there is none."""
    steps = [s for s in steps if s is not None]
    if not steps:
        return None

    def run() -> None:
        for step in steps:
            step()
    return run


class Runtime:
    """Starts each pod's containers as processes on the pod's own 127.N.x.y address.

    `store` is where pods come from and their status goes: the API double's Store, or
    anything with its `add_listener`, `find` and `update` (`sandbox.real.kubelet.podsource`
    watches a real API server's pods bound to the node). With `on_pod_stopped(pod)` the
    runtime says when a deleted pod's processes are all gone (a kubelet then removes the
    pod from the API server); `image_known(image)` says whether an image maps to a local
    program (others wait with ErrImagePull); `addresses` lends a pool of pod addresses the
    caller owns and releases (`AddressPool`, or anything with its `attach(pod)`,
    `detach(address)` and `network`: `sandbox.real.kubelet.podnetwork.PodNetwork` puts each
    pod in a network namespace of its own); `proxy_command(pod, address, directory, spec)`
    gives the istio-proxy or istio-init container's (command, environment) instead of the
    sandbox's Envoy or an init that does nothing (the real pilot-agent:
    `sandbox.real.istio.sidecar.proxy_command`; istio-init alone as the real istio-iptables:
    `init_only_command`), or None to run it as without one;
    `program(pod, address, directory, spec, env)` maps any other container's image to a
    local program, its (command, environment), or None for the sandbox's own mapping
    (`sandbox.real.istio.istiodpod.discovery_program`: the pilot image as the real
    pilot-discovery). `kubeconfig` is the one the sandbox istiod reads; None: it reads the
    cluster as a pod does (`--in-cluster`: the variables of `service_env(address)`, a
    kubelet's `kubernetes` Service environment, and its service account's token)."""

    def __init__(self, store: Store, state_dir: pathlib.Path, kubeconfig: pathlib.Path | None,
                 behaviours: Behaviours, python: str = sys.executable,
                 envoy: str | None = None, allow_websocket=lambda: True, *,
                 node_name: str = "sandbox-node", host_ip: str = "127.0.0.1",
                 addresses: AddressPool | None = None, image_known=any_image,
                 on_pod_stopped=None, volumes=None, proxy_command=None, program=None,
                 service_env=None):
        self.store = store
        self.service_env = service_env
        self.proxy_command = proxy_command
        self.program = program
        # the pods' volumes (`sandbox.real.kubelet.volumes.PodVolumes`: mount, mounts,
        # unmount), or None: the double sets up none
        self.volumes = volumes
        self.node_name = node_name
        self.host_ip = host_ip
        self.image_known = image_known
        self.images = images.Images(state_dir)  # missing images, image users
        self.on_pod_stopped = on_pod_stopped
        self.state_dir = state_dir
        self.kubeconfig = kubeconfig
        self.behaviours = behaviours
        self.python = python
        self.envoy = envoy or str(pathlib.Path(python).parent / "envoy")
        self.allow_websocket = allow_websocket
        self._lock = threading.Lock()
        self._pods: dict[str, PodProcesses] = {}  # by pod uid
        self._owns_addresses = addresses is None
        self.addresses = addresses or AddressPool()
        self.cgroups, why = CgroupTree.create(self.addresses.network, state_dir)
        if self.cgroups is None:
            print(f"sandbox: no writable cgroup hierarchy ({why}); container IDs are "
                  "sandbox://PID and `kubectl mesh sniff --mode node` cannot find container "
                  "processes (run the sandbox as root)", file=sys.stderr, flush=True)
        self._seq = itertools.count()
        self._proxy_seq = itertools.count()
        self._closed = False
        store.add_listener(self._on_event)

    # -- events
    def _on_event(self, ev: Event) -> None:
        if ev.key != "pods" or self._closed:
            return
        uid = ev.obj["metadata"].get("uid")
        if ev.type == "ADDED":
            self.behaviours.note_pod(ev.obj, next(self._seq))
            threading.Thread(target=self._start_pod, args=(ev.obj,), daemon=True,
                             name=f"pod-{ev.name}").start()
        elif ev.type == "DELETED":
            with self._lock:
                pod = self._pods.pop(uid, None)
            if pod:
                threading.Thread(target=self._stop_pod, args=(pod, ev.obj), daemon=True).start()
            elif self.on_pod_stopped is not None:
                self.on_pod_stopped(ev.obj)
        elif ev.type == "MODIFIED" and ev.obj["metadata"].get("deletionTimestamp"):
            # a graceful delete: stop the pod, then `on_pod_stopped` removes it (the API
            # double; the real kubelet's PodSource hands these on as DELETED already)
            with self._lock:
                pod = self._pods.pop(uid, None)
            if pod:
                threading.Thread(target=self._stop_pod, args=(pod, ev.obj), daemon=True).start()
        elif ev.type == "MODIFIED":
            with self._lock:
                pod = self._pods.get(uid)
            if pod:
                for spec in (ev.obj.get("spec") or {}).get("ephemeralContainers") or []:
                    if spec["name"] not in pod.containers:
                        c = self._container(pod, spec, ephemeral=True)
                        threading.Thread(target=self._run_ephemeral, args=(pod, c),
                                         daemon=True).start()

    # -- starting
    def _start_pod(self, obj: dict) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        try:
            address = self.addresses.attach(obj)
        except (OSError, RuntimeError) as e:  # a kubelet's FailedCreatePodSandBox: it waits
            print(f"sandbox: pod {ns}/{name}: cannot set up its network: {e}", file=sys.stderr,
                  flush=True)
            return
        ip = address.ip
        env = {"POD_NAME": name, "POD_NAMESPACE": ns, "POD_IP": ip, "INSTANCE_IP": ip,
               "HOSTNAME": name, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "PYTHONPATH": str(pathlib.Path(__file__).resolve().parent.parent)}
        if self.kubeconfig is not None:
            env["SANDBOX_KUBECONFIG"] = str(self.kubeconfig)
        if self.service_env is not None:
            env.update(self.service_env(address))
        if address.netns:  # tools (the tcpdump shim) capture the pod's own interfaces
            env["SANDBOX_POD_NETNS"] = address.netns
        pod = PodProcesses(ns, name, meta["uid"], ip, env, address=address,
                           qos_class=(obj.get("status") or {}).get("qosClass")
                           or qos.pod_qos(spec))
        with self._lock:
            if self._closed:
                self.addresses.detach(address)
                return
            self._pods[pod.uid] = pod
        current = self._find_pod(pod)
        if current is None or current["metadata"].get("deletionTimestamp"):
            # deleted before it was registered here: its DELETED event found nothing to stop
            with self._lock:
                self._pods.pop(pod.uid, None)
            self.addresses.detach(address)
            if self.on_pod_stopped is not None and current is not None:
                self.on_pod_stopped(current)
            return
        for init, key in ((True, "initContainers"), (False, "containers")):
            for c_spec in spec.get(key) or []:
                c = self._container(pod, c_spec, init=init)
                c.waiting = self._cannot_start(obj, c_spec)
        pod.initialized = not pod.inits()
        pod.started = time.monotonic()
        self._set_status(pod, phase="Pending", scheduled=True)
        if self.volumes is not None and not self._mount(pod, obj):
            return
        if any(c.waiting for c in pod.containers.values()):
            self._back_off(pod, "Pending")
        if any(c.waiting for c in pod.inits()) or not self._run_inits(pod, obj):
            return
        if any(c.waiting for c in pod.regular()):
            return
        try:
            for c in pod.regular():
                self._launch(pod, c, obj)
        except OSError as e:
            for c in pod.regular():
                if c.process is None:
                    c.exit_code = 128  # like a runtime's StartError: the container never ran
            pod.terminal = ("Failed", "", str(e))
            self._set_status(pod, phase="Failed")
            return
        self._set_status(pod, phase="Running")
        threading.Thread(target=self._supervise, args=(pod, obj), daemon=True).start()
        deadline = time.monotonic() + 60
        while not pod.stopping.is_set() and not pod.terminal and time.monotonic() < deadline:
            changed = False
            for c in pod.kept_ready():
                if not c.ready and c.process and c.process.poll() is None and self._probe(pod, c):
                    c.ready = changed = True
            if changed:
                self._set_status(pod, phase="Running")
            if all(c.ready for c in pod.kept_ready()):
                return
            time.sleep(0.05)

    def _cannot_start(self, obj: dict, spec: dict) -> tuple[str, str] | None:
        """The waiting (reason, message) of a container the kubelet would not start: its
        image cannot be pulled, or runAsNonRoot refuses the user it would run as
        (sandbox/images.py cites the kubelet's functions)."""
        image = spec.get("image") or ""
        if self.images.missing(image):  # the registry's answer, whatever the sandbox can run
            return ("ErrImagePull", images.pull_error(image))
        if not self.image_known(image):
            return ("ErrImagePull", f'failed to pull and unpack image "{image}": the sandbox '
                                    "has no program for it")
        refused = images.run_as_non_root_error(obj, spec, self.images.user(image))
        if refused:
            return ("CreateContainerConfigError", refused)
        return None

    def _back_off(self, pod: PodProcesses, phase: str) -> None:
        """After a failed pull the kubelet backs off: ErrImagePull becomes ImagePullBackOff
        (with the pull's error) a moment later; the sandbox does not pull again."""
        def later() -> None:
            if pod.stopping.wait(1.0):
                return
            for c in pod.containers.values():
                if c.waiting and c.waiting[0] == "ErrImagePull":
                    c.waiting = ("ImagePullBackOff",
                                 images.back_off_message(c.spec.get("image") or "", c.waiting[1]))
            self._set_status(pod, phase=phase)

        threading.Thread(target=later, daemon=True, name=f"backoff-{pod.name}").start()

    def _mount(self, pod: PodProcesses, obj: dict) -> bool:
        """Set up the pod's volumes, again every second while one fails (the containers
        wait in ContainerCreating, as behind a kubelet's FailedMount: a configMap the
        controller manager has not published yet, say). False if the pod stops first."""
        failing: list[Container] = []
        while True:
            try:
                pod.env.update(self.volumes.mount(obj))
            except RuntimeError as e:
                if not failing:
                    failing = [c for c in pod.containers.values() if c.waiting is None]
                    for c in failing:
                        c.waiting = ("ContainerCreating", f"MountVolume.SetUp failed: {e}")
                    self._set_status(pod, phase="Pending")
                if pod.stopping.wait(1.0):
                    return False
                continue
            for c in failing:
                c.waiting = None
            return True

    def _run_inits(self, pod: PodProcesses, obj: dict) -> bool:
        """Run the init containers one after the other, each to a successful end (a sidecar:
        until started), as pkg/kubelet/kuberuntime/kuberuntime_manager.go `computePodActions`
        orders them: a failed one is run again after the back-off unless the pod's
        restartPolicy is Never, which fails the pod (kubelet_pods.go `getPhase`). False when
        the pod is not to go on."""
        never = (obj.get("spec") or {}).get("restartPolicy") == "Never"
        for c in pod.inits():
            while True:
                with pod.starting:
                    if pod.stopping.is_set():
                        return False
                    try:
                        self._launch(pod, c, obj)
                    except OSError as e:
                        c.exit_code, c.finished_at = 128, now_rfc3339()
                        c.log.write_line("stderr", f"failed to start container {c.name!r}: {e}")
                self._set_status(pod, phase="Pending")
                if _sidecar(c.spec):
                    break
                if c.process is not None:
                    c.process.wait()
                    self._container_ended(c)
                if pod.stopping.is_set():
                    return False
                if c.exit_code == 0:
                    c.ready = True  # a completed init container counts as ready
                    break
                if never:
                    pod.terminal = ("Failed", "", "")
                    self._set_status(pod, phase="Failed")
                    return False
                c.restarts += 1
                c.last_state = {"terminated": self._terminated(c)}
                self._set_status(pod, phase="Pending")
                if pod.stopping.wait(1.0):  # the sandbox's whole back-off
                    return False
        pod.initialized = True
        return True

    def _container(self, pod: PodProcesses, spec: dict, ephemeral: bool = False,
                   init: bool = False) -> Container:
        directory = self.state_dir / "pods" / pod.namespace / pod.name / spec["name"]
        directory.mkdir(parents=True, exist_ok=True)
        log = ContainerLog(directory.parent / f"{spec['name']}.log")
        c = Container(spec["name"], spec, directory, log, ephemeral=ephemeral, init=init)
        pod.containers[c.name] = c
        return c

    def _command(self, pod: PodProcesses, c: Container, obj: dict) -> tuple[list[str], dict]:
        env = dict(pod.env)
        if self.volumes is not None:
            env["SANDBOX_MOUNTS"] = json.dumps(self.volumes.mounts(obj, c.spec))
        for e in c.spec.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
        if c.name in (PROXY, PROXY_INIT) and self.proxy_command is not None:
            given = self.proxy_command(obj | {"status": {"podIP": pod.ip}}, pod.address,
                                       c.directory, c.spec)
            if given is not None:
                return given
        elif self.program is not None and not c.ephemeral:
            given = self.program(obj | {"status": {"podIP": pod.ip}}, pod.address, c.directory,
                                 c.spec, env)
            if given is not None:
                return given
        if c.name == PROXY:
            from .istiod.bootstrap import MESH_CONFIGMAP, mesh_default_config, render_bootstrap
            try:
                bootstrap = render_bootstrap(
                    obj | {"status": {"podIP": pod.ip}}, proxy_type(obj),
                    (self._istiod_for_proxy(), 15010), admin_address=pod.address.admin_address,
                    mesh_default_config=mesh_default_config(
                        self.store.find("configmaps", *MESH_CONFIGMAP)))
            except ValueError as e:  # pilot-agent exits when it cannot build its proxy config
                return [self.python, "-c", "import sys; sys.exit(sys.argv[1])", str(e)], env
            path = c.directory / "envoy-bootstrap.json"
            path.write_text(json.dumps(bootstrap, indent=1))
            # In a network namespace of its own the pod's istio-init may capture its traffic
            # (`sandbox.real.istio.sidecar.init_only_command`): Envoy runs as the injected
            # runAsUser (1337), whose connections istio-iptables' owner match lets out
            # (tools/istio-iptables/pkg/capture/run.go). On loopback it stays the runtime's.
            user = run_as(obj, c.spec) if pod.address.netns else []
            return [*user, self.envoy, "-c", str(path), "--disable-hot-restart", "--concurrency", "1",
                    # pilot-agent's default (pkg/envoy/proxy.go `args`)
                    "--file-flush-interval-msec", "1000", "-l", "warning",
                    "--log-format", "%Y-%m-%dT%T.%fZ\t%l\tenvoy %n %g:%#\t%v"], env
        labels = obj["metadata"].get("labels") or {}
        # any namespace (e.g. a managed aks-istio-system); a debug container in istiod's pod
        # runs its own command
        if labels.get("app") == "istiod" and not c.ephemeral:
            source = ["--kubeconfig", str(self.kubeconfig)] if self.kubeconfig is not None \
                else ["--in-cluster"]
            return [self.python, "-m", "sandbox.istiod", *source, "--listen", pod.ip], env
        if c.init and not c.spec.get("command") and not _sidecar(c.spec):
            # the sandbox has no image entrypoints: an init container without a command of
            # its own has nothing to do and completes
            return ["true"], env
        if c.ephemeral or c.spec.get("command"):
            cmd = list(c.spec.get("command") or []) + list(c.spec.get("args") or [])
            # Debug/ephemeral containers see the tool shims and their own facts (sniff).
            return (cmd or ["/bin/sh"]), tools.container_env(env, obj, c.spec,
                                                             ephemeral=c.ephemeral)
        sample = bookinfo.command(c.spec.get("image") or "", self.python, pod.ip)
        if sample is not None:  # Istio's bookinfo images: the image's ENV under the container's
            return sample[0], {**sample[1], **env}
        env.update(self.behaviours.env_for(obj))
        env.setdefault("SANDBOX_VERSION", labels.get("version", ""))
        ports = [str(p["containerPort"]) for p in c.spec.get("ports") or []] or ["8080"]
        cmd = [self.python, "-m", "sandbox.app", "--listen", pod.ip]
        for port in ports:
            cmd += ["--port", port]
        return cmd, env

    def _istiod_for_proxy(self) -> str:
        """Round-robin over the istiod pods that have an address (waits for one to exist)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ips = sorted(p.ip for p in list(self._pods.values())
                         if p.namespace == "istio-system" and p.name.startswith("istiod"))
            if ips:
                return ips[next(self._proxy_seq) % len(ips)]
            time.sleep(0.1)
        return "127.0.0.1"

    def _launch(self, pod: PodProcesses, c: Container, obj: dict) -> None:
        cmd, env = self._command(pod, c, obj)
        tools.check_command(cmd, env)  # FileNotFoundError if the image lacks the tool
        stdin = subprocess.PIPE if c.spec.get("stdin") else subprocess.DEVNULL
        self._release_scope(c)  # the previous run's (a restart gets a new ID, like a kubelet's)
        container_id = secrets.token_hex(32)
        if self.cgroups is not None:
            c.scope = self.cgroups.add_scope(scope_relpath(pod.qos_class, pod.uid, container_id))
        try:
            # The child joins the container's cgroup between fork and exec (what
            # `/proc/PID/cgroup` shows node tools); see Scope.joining.
            with c.scope.joining() if c.scope else contextlib.nullcontext() as join:
                # and the pod's network namespace, if it has one
                c.process = subprocess.Popen(cmd, cwd=c.directory, env=env, stdin=stdin,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             start_new_session=True,
                                             preexec_fn=preexec(join, pod.address.enter))
        except (OSError, subprocess.SubprocessError) as e:
            self._release_scope(c)
            if isinstance(e, OSError):
                raise
            raise OSError(f"cannot start {c.name} in its cgroup: {e}") from e
        c.container_id = (f"containerd://{container_id}" if c.scope
                          else f"sandbox://{c.process.pid}")
        c.started_at = now_rfc3339()
        c.exit_code, c.finished_at = None, ""
        c.log.follow_process(c.process)

    @staticmethod
    def _probe(pod: PodProcesses, c: Container) -> bool:
        return probes.ready(pod.address.dial, c.name == PROXY, c.process.args, c.spec)

    def _supervise(self, pod: PodProcesses, obj: dict) -> None:
        """A kubelet's pod worker: notice ended containers, restart those their restartPolicy
        restarts, move the pod to Succeeded/Failed when none is left running or restarting,
        and kill it once past its activeDeadlineSeconds (see podlifecycle)."""
        while not pod.stopping.wait(0.5):
            spec = (self._find_pod(pod) or obj).get("spec") or {}  # the deadline may be lowered
            if podlifecycle.past_active_deadline(spec, pod.started, time.monotonic()):
                pod.terminal = ("Failed", podlifecycle.DEADLINE_REASON,
                                podlifecycle.DEADLINE_MESSAGE)
                self._set_status(pod, phase="Failed")
                self._kill_containers(pod)
                self._set_status(pod, phase="Failed")
                return
            ended = [c for c in pod.regular() if c.process is not None and c.exit_code is None
                     and c.process.poll() is not None]
            if not ended:
                continue
            for c in ended:
                self._container_ended(c)
            phase = podlifecycle.pod_phase(spec, self._states(pod))
            if phase in podlifecycle.TERMINAL:
                pod.terminal = (phase, "", "")
            self._set_status(pod, phase=phase)
            if pod.terminal:
                return
            restart = [c for c in ended if podlifecycle.should_restart(c.spec, spec, c.exit_code)]
            if restart and pod.stopping.wait(1.0):  # the sandbox's whole back-off
                return
            for c in restart:
                with pod.starting:
                    if pod.stopping.is_set():
                        return
                    c.restarts += 1
                    c.last_state = {"terminated": self._terminated(c)}
                    try:
                        self._launch(pod, c, obj)
                    except OSError:
                        c.exit_code = None  # noticed as ended again next round, and retried
                        continue
                threading.Thread(target=self._wait_ready, args=(pod, c), daemon=True).start()

    def _container_ended(self, c: Container) -> None:
        c.exit_code = podlifecycle.exit_code(c.process.returncode)
        c.finished_at, c.ready = now_rfc3339(), False
        self._release_scope(c)

    @staticmethod
    def _states(pod: PodProcesses) -> list[podlifecycle.ContainerState]:
        return [podlifecycle.ContainerState(c.name, c.process is not None
                                            and c.process.poll() is None, c.exit_code)
                for c in pod.regular()]

    def _wait_ready(self, pod: PodProcesses, c: Container) -> None:
        deadline = time.monotonic() + 60
        while not pod.stopping.is_set() and time.monotonic() < deadline:
            if c.process.poll() is not None:
                return
            if self._probe(pod, c):
                c.ready = True
                self._set_status(pod, phase="Running")
                return
            time.sleep(0.1)

    def _run_ephemeral(self, pod: PodProcesses, c: Container) -> None:
        obj = self._find_pod(pod)
        if obj is None:
            return
        with pod.starting:
            if pod.stopping.is_set() or pod.terminal:
                return  # a kubelet starts nothing in a pod that has ended: it stays waiting
            c.waiting = self._cannot_start(obj, c.spec)
            if c.waiting:
                self._set_status(pod, phase="Running")
                self._back_off(pod, "Running")
                return
            try:
                self._launch(pod, c, obj)
            except OSError as e:
                c.exit_code = 128
                c.log.write_line("stderr", f"failed to start container {c.name!r}: {e}")
                self._set_status(pod, phase="Running")
                return
        self._set_status(pod, phase="Running")
        c.process.wait()
        self._container_ended(c)
        self._set_status(pod, phase="Running")

    def _release_scope(self, c: Container) -> None:
        """Remove the container's cgroup (its process has ended, or is being stopped), and
        end what was exec'd into it, as a runtime stopping a container does."""
        execs, c.execs = c.execs, []
        for p in execs:
            if p.poll() is None:
                _signal_group(p, signal.SIGKILL)
        scope, c.scope = c.scope, None
        if scope is not None and self.cgroups is not None:
            self.cgroups.remove_scope(scope)

    # -- status
    def _find_pod(self, pod: PodProcesses) -> dict | None:
        obj = self.store.find("pods", pod.namespace, pod.name)
        return obj if obj and obj["metadata"].get("uid") == pod.uid else None

    def _set_status(self, pod: PodProcesses, phase: str, scheduled: bool = False) -> None:
        """Write the pod's status in `phase`, unless it is terminal: then in that phase."""
        def mutate(obj: dict) -> None:
            if obj["metadata"].get("uid") != pod.uid:
                raise NotFound(pod.name)
            nonlocal phase
            reason = message = ""
            if pod.terminal:
                phase, reason, message = pod.terminal
            obj.setdefault("spec", {})["nodeName"] = self.node_name
            statuses = [self._container_status(c, pod.initialized) for c in pod.regular()]
            inits = [self._container_status(c, True) for c in pod.inits()]
            t = now_rfc3339()
            status = obj.setdefault("status", {})
            status.update({"phase": phase, "podIP": pod.ip, "podIPs": [{"ip": pod.ip}],
                           "hostIP": self.host_ip, "hostIPs": [{"ip": self.host_ip}],
                           "startTime": status.get("startTime") or t,
                           "containerStatuses": statuses, "qosClass": pod.qos_class})
            if inits:
                status["initContainerStatuses"] = inits
            if obj["metadata"].get("generation"):
                status["observedGeneration"] = obj["metadata"]["generation"]
            for key, value in (("reason", reason), ("message", message)):
                if value:
                    status[key] = value
            eph = [self._container_status(c, True) for c in pod.containers.values() if c.ephemeral]
            if eph:
                status["ephemeralContainerStatuses"] = eph
            status["conditions"] = podconditions.pod_conditions(
                status.get("conditions") or [], obj["metadata"].get("generation"), phase,
                [c.spec for c in pod.inits()], inits, statuses, t)
        try:
            # a status write, and binding the pod to the node, leave the generation alone
            # (pods/status and pods/binding do not go through the pod strategy's
            # updatePodGeneration)
            self.store.update("pods", pod.namespace, pod.name, mutate, bump_generation=False)
        except NotFound:
            pass

    @staticmethod
    def _container_status(c: Container, initialized: bool) -> dict:
        """A container's status; `initialized` is false while the pod's init containers run
        (a regular container then waits with reason PodInitializing)."""
        running = c.process is not None and c.process.poll() is None
        if running:
            state = {"running": {"startedAt": c.started_at}}
        elif c.exit_code is not None:
            state = {"terminated": Runtime._terminated(c)}
        elif c.waiting is not None:
            state = {"waiting": {"reason": c.waiting[0], "message": c.waiting[1]}}
        else:
            state = {"waiting": {"reason": "ContainerCreating" if initialized
                                 else "PodInitializing"}}
        image = c.spec.get("image", "")
        completed_init = c.init and not _sidecar(c.spec) and c.exit_code == 0
        return {"name": c.name, "image": image, "ready": c.ready and (running or completed_init),
                "started": running, "restartCount": c.restarts, "state": state,
                "containerID": c.container_id if c.process else "",
                "lastState": c.last_state,
                "imageID": f"sandbox://{image}" if c.process else ""}

    @staticmethod
    def _terminated(c: Container) -> dict:
        """The `terminated` state of the container's run that has ended."""
        return {"exitCode": c.exit_code, "reason": "Completed" if c.exit_code == 0 else "Error",
                "startedAt": c.started_at or None, "finishedAt": c.finished_at or None,
                "containerID": c.container_id}

    # -- stopping
    def _stop_pod(self, pod: PodProcesses, obj: dict | None = None) -> None:
        with pod.starting:
            pod.stopping.set()
        self._kill_containers(pod)
        for c in pod.containers.values():
            c.log.close()
        if self.volumes is not None:
            self.volumes.unmount({"metadata": {"namespace": pod.namespace, "name": pod.name,
                                               "uid": pod.uid}})
        self.addresses.detach(pod.address)
        if obj is not None and self.on_pod_stopped is not None:
            self.on_pod_stopped(obj)

    def _kill_containers(self, pod: PodProcesses) -> None:
        """SIGTERM every running container (SIGKILL after 3 s), as a kubelet killing a pod;
        each ends with the exit code its signal gives it."""
        running = [c for c in pod.containers.values()
                   if c.process and c.process.poll() is None]
        for c in running:
            _signal_group(c.process, signal.SIGCONT)  # a paused (SIGSTOPped) Envoy must still stop
            _signal_group(c.process, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for c in running:
            try:
                c.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(c.process, signal.SIGKILL)
                c.process.wait()
            if c.exit_code is None:
                c.exit_code = podlifecycle.exit_code(c.process.returncode)
                c.finished_at = now_rfc3339()
        for c in pod.containers.values():
            self._release_scope(c)

    def stop_all(self) -> None:
        with self._lock:
            self._closed = True
            pods = list(self._pods.values())
            self._pods.clear()
        threads = [threading.Thread(target=self._stop_pod, args=(p,)) for p in pods]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self.cgroups is not None:
            self.cgroups.remove_all()
        if self._owns_addresses:
            self.addresses.release()

    def status(self) -> list[dict]:
        with self._lock:
            pods = sorted(self._pods.values(), key=lambda p: (p.namespace, p.name))
        return [{"namespace": p.namespace, "name": p.name, "podIP": p.ip,
                 "containers": [{"name": c.name, "pid": c.process.pid
                                 if c.process and c.process.poll() is None else None}
                                for c in p.containers.values()]} for p in pods]

    def pod_processes(self, namespace: str, name: str) -> PodProcesses | None:
        with self._lock:
            return next((p for p in self._pods.values()
                         if p.namespace == namespace and p.name == name), None)

    # -- subresources
    def on_pod_subresource(self, handler, verb: str, obj: dict, sub: str, query: dict) -> None:
        from . import podio
        pod = self.pod_processes(obj["metadata"]["namespace"], obj["metadata"]["name"])
        podio.serve(self, handler, obj, pod, sub, query)


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
