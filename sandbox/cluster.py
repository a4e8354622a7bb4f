"""The sandbox supervisor: state directory, API double, controllers, pod runtime."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import threading
import time

import yaml

from . import kubeconfig, nodestatus
from .credentials import private_dir
from .apiserver import auth, kinds, pki, podsecurity, podvalidation
from .apiserver.kubernetesservice import kubernetes_service
from .apiserver.latency import Latency, write_rtt
from .apiserver.podadmission import PodAdmission
from .apiserver.version import ServedVersion
from .apiserver.server import Api, ApiError, ApiServer
from .apiserver.store import NotFound, Store
from .behaviour import Behaviours
from .controllers import CNI_FILE, NATIVE_MODE_DEFAULT, NATIVE_MODE_FILE, Controllers, pod_ready
from .runtime import Runtime

SCENARIOS = pathlib.Path(__file__).parent / "scenarios"
DEFAULT_SCENARIO = SCENARIOS / "default.yaml"
BEHAVIOUR_API = "sandbox.kubectl-mesh.io/v1"


class ScenarioError(Exception):
    pass


def load_documents(paths: list[pathlib.Path]) -> list[dict]:
    docs: list[dict] = []
    for path in paths:
        try:
            loaded = list(yaml.safe_load_all(path.read_text()))
        except (OSError, yaml.YAMLError) as e:
            raise ScenarioError(f"cannot read scenario {path}: {e}") from None
        for d in loaded:
            if not d:
                continue
            if d.get("kind") == "List":
                docs.extend(d.get("items") or [])
            else:
                docs.append(d)
    return docs


class Sandbox:
    """Everything `python -m sandbox up` runs in-process; pods are child processes."""

    def __init__(self, state_dir: pathlib.Path, scenarios: list[pathlib.Path], verbose: bool = False):
        self.state_dir = state_dir.resolve()
        self.scenarios = scenarios
        self.verbose = verbose
        self.kubeconfig_path = self.state_dir / "kubeconfig"
        self._status_stop = threading.Event()

    def start(self) -> "Sandbox":
        d = self.state_dir
        private_dir(d)  # it holds the kubeconfig and the token table
        docs = load_documents(self.scenarios)
        behaviours = Behaviours([x for x in docs if x.get("apiVersion") == BEHAVIOUR_API])
        objects = [x for x in docs if x.get("apiVersion") != BEHAVIOUR_API]
        ca, cert, key = pki.write_ca_and_server_cert(d / "pki")
        self.token = secrets.token_hex(24)
        auth.write_tokens(d / "rbac.json", {self.token: {"user": "sandbox-admin", "all_verbs": True}})
        self.store = Store()
        self.api = Api(self.store, auth.Authorizer(d / "rbac.json"), verbose=self.verbose)
        write_rtt(d, 0)  # a new sandbox starts on loopback time, whatever a previous one set
        self.api.latency = Latency(d)  # `python -m sandbox rtt 20ms` models a remote server
        self.api.version = ServedVersion(d)  # `<state>/kube-version`: which minor to behave as
        self.server = ApiServer(self.api, str(cert), str(key))
        kubeconfig.write(self.kubeconfig_path, kubeconfig.render(self.server.url, ca.read_bytes(), self.token))
        self.ca_pem = ca.read_bytes()
        self.controllers = Controllers(self.api, native_mode=lambda: native_mode(d),
                                       cni=lambda: cni_enabled(d),
                                       root_ca=ca.read_bytes())
        # the API server's own pod admission runs before the injector (the controllers'
        # admission) and, re-invoked, after it (podadmission.py)
        pod_admission = PodAdmission(self.store)
        self.api.admission.insert(0, pod_admission)
        self.api.admission.append(pod_admission)
        self.api.admission.append(podvalidation.validate)  # after defaults and injection
        self.api.admission.append(podsecurity.PodSecurity(self.store))  # validating: after injection
        self.runtime = Runtime(self.store, d, self.kubeconfig_path, behaviours,
                               allow_websocket=lambda: not (d / "refuse-websocket").exists(),
                               on_pod_stopped=self._pod_stopped)
        self.api.hooks = self.runtime
        self.server.start()
        self.controllers.start()
        # the Node a kubelet would register (its status is written once: no heartbeats)
        self._create(nodestatus.node_object("sandbox-node", "127.0.0.1", d))
        for ns in ("default", "kube-system"):
            self._create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        self._create(kubernetes_service(self.server.port))
        self.apply(objects)
        threading.Thread(target=self._write_status_loop, daemon=True).start()
        return self

    def _create(self, obj: dict) -> dict:
        kind = kinds.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if kind is None:
            raise ScenarioError(f"unknown kind {obj.get('apiVersion')}/{obj.get('kind')} "
                                f"({(obj.get('metadata') or {}).get('name')})")
        ns = (obj.get("metadata") or {}).get("namespace") or ("default" if kind.namespaced else "")
        return self.api.create(kind, ns, obj)

    def _pod_stopped(self, obj: dict) -> None:
        """A gracefully deleted pod's processes are gone: remove it, if it is still that pod
        (the kubelet's final delete with grace 0 and a UID precondition,
        pkg/kubelet/status/status_manager.go `syncPod`)."""
        m = obj["metadata"]
        if not m.get("deletionTimestamp"):
            return
        current = self.store.find("pods", m["namespace"], m["name"])
        if current is not None and current["metadata"].get("uid") == m.get("uid"):
            try:
                self.store.delete("pods", m["namespace"], m["name"])
            except NotFound:
                pass

    def apply(self, objects: list[dict]) -> None:
        """Create objects, namespaces first (like `kubectl apply -f` of a whole scenario)."""
        for obj in sorted(objects, key=lambda o: o.get("kind") != "Namespace"):
            try:
                self._create(obj)
            except ApiError as e:
                labels = (obj.get("metadata") or {}).get("labels")
                if e.code == 409 and obj.get("kind") == "Namespace" and labels:
                    # `default` exists: the scenario labels it, as `kubectl label` would
                    self.store.update("namespaces", "", obj["metadata"]["name"], lambda ns: (
                        ns["metadata"].setdefault("labels", {}).update(labels)))
                    continue
                raise ScenarioError(e.body["message"]) from None

    def wait_ready(self, timeout: float = 60.0, stop: threading.Event | None = None) -> list[str]:
        """Wait until every pod is Ready (or `stop` is set); return the names of those that
        are not."""
        deadline = time.monotonic() + timeout
        while True:
            self.controllers.wait_idle()
            pods = self.store.list("pods")[0]
            missing = [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                       for p in pods if not pod_ready(p)]
            if pods and not missing or time.monotonic() > deadline or stop and stop.is_set():
                return missing
            time.sleep(0.1)

    def _write_status_loop(self) -> None:
        write_status_loop(self.runtime, self.state_dir, self._status_stop)

    def stop(self) -> None:
        self._status_stop.set()
        self.runtime.stop_all()
        self.controllers.stop()
        self.server.stop()
        status = self.state_dir / "status.json"
        status.write_text("[]")


def native_mode(state_dir: pathlib.Path) -> str:
    """The injector's ENABLE_NATIVE_SIDECARS: `<state>/native-sidecars` (read per pod, so a
    test can switch a running sandbox), else SANDBOX_NATIVE_SIDECARS, else istiod's `auto`."""
    try:
        return (state_dir / NATIVE_MODE_FILE).read_text().strip()
    except OSError:
        return os.environ.get("SANDBOX_NATIVE_SIDECARS", NATIVE_MODE_DEFAULT)


def cni_enabled(state_dir: pathlib.Path) -> bool:
    """Whether the injector renders for Istio CNI (values.pilot.cni.enabled): `<state>/istio-cni`
    holding `true` (read per pod, so a test can switch it), else SANDBOX_ISTIO_CNI; off by
    default, as in Istio's chart."""
    try:
        value = (state_dir / CNI_FILE).read_text().strip()
    except OSError:
        value = os.environ.get("SANDBOX_ISTIO_CNI", "false")
    return value == "true"


def write_status_loop(runtime: Runtime, state_dir: pathlib.Path, stop: threading.Event) -> None:
    """Keep `<state>/status.json` (pods, their IPs and container pids: what `python -m sandbox
    status` shows and `down` kills if the supervisor died) current until `stop` is set."""
    last = None
    while not stop.wait(0.3):
        status = runtime.status()
        if status != last:
            tmp = state_dir / "status.json.tmp"
            tmp.write_text(json.dumps(status, indent=1))
            tmp.replace(state_dir / "status.json")
            last = status
