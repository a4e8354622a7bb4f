"""`python -m sandbox up --backend real`: the scenario on a real control plane.

The same surface as the API double's `sandbox.cluster.Sandbox` (start, wait_ready, stop,
kubeconfig_path, runtime) and the same state directory layout (`kubeconfig`, `status.json`,
`pods/<namespace>/<pod>/`, the cgroup record), so `python -m sandbox down|status` and the tests
work on either. What runs:

- etcd, kube-apiserver, kube-controller-manager and kube-scheduler (`controlplane`); the
  Deployments of the scenario become ReplicaSets and Pods through the real controllers and
  are bound to the node by the real scheduler;
- the sandbox as the node's kubelet (`kubelet`): pods as local processes, each in a network
  namespace of its own on the node's bridge (`pod_network="netns"`, `kubelet.podnetwork`) or
  on its own address of the leased 127.N network (`"loopback"`), with the pod runtime of the
  double (app images → the sandbox app, proxyv2 → a real Envoy bootstrapped to the sandbox
  istiod);
- Istio's CRDs from the Istio module's chart and the sidecar injection webhook
  (`injection`), which the sandbox istiod and the double build in.

The components start in parallel where they can: the node registers, the CRDs, the webhook
and the scenario are created while the controller manager and the scheduler start."""

from __future__ import annotations

import functools
import pathlib
import shutil
import sys
import threading
import time

import yaml

from ..behaviour import Behaviours
from ..cluster import (BEHAVIOUR_API, ScenarioError, cni_enabled, load_documents, native_mode,
                       write_status_loop)
from ..controllers import native_sidecar, pod_ready
from ..credentials import write_private
from .apply import Applier, ApplyError, istio_crds
from .controlplane import ControlPlane, ControlPlaneError, kubeconfig_for
from .injection import InjectionWebhook, webhook_configuration
from .kubelet import Kubelet
from .kubelet.podnetwork import SERVICE_IP, SERVICE_PORT, default_pod_network, record

POD_IDENTITY = ("kube-system", "sandbox-pods")
DOUBLE_ADMIN = "sandbox-admin"  # the double's kubeconfig user entry  # the service account pods act as
TOKEN_SECONDS = 7 * 24 * 3600
ISTIO_CONTROL_PLANES = ("sandbox", "real")


class RealSandbox:
    def __init__(self, state_dir: pathlib.Path, scenarios: list[pathlib.Path],
                 verbose: bool = False, timeout: float = 90.0,
                 pod_network: str | None = None, istio: str = "sandbox"):
        """`pod_network`: "netns" (a network namespace per pod) or "loopback" (default
        $SANDBOX_POD_NETWORK, else `kubelet.podnetwork.default_pod_network()`: netns as root);
        `istio`: "sandbox" (the sandbox istiod, the scenario's own pod, and the sandbox's
        injection webhook) or "real" (Istio installed as `istioctl install` installs it,
        istiod a pod: `istio.mesh`; needs the netns pod network)."""
        if istio not in ISTIO_CONTROL_PLANES:
            raise ValueError(f"istio must be one of {ISTIO_CONTROL_PLANES}, not {istio!r}")
        self.istio = istio
        self.pod_network = pod_network or default_pod_network()
        if istio == "real" and self.pod_network != "netns":
            raise ValueError("real Istio needs the netns pod network (istiod's pod and the "
                             "sidecars' iptables need a network namespace each; run as root)")
        self.state_dir = state_dir.resolve()
        self.scenarios = scenarios
        self.verbose = verbose
        self.timeout = timeout
        self.kubeconfig_path = self.state_dir / "kubeconfig"
        self.cp: ControlPlane | None = None
        self.kubelet: Kubelet | None = None
        self.webhook: InjectionWebhook | None = None
        self._status_stop = threading.Event()
        self._status_thread: threading.Thread | None = None

    def _native(self, pod: dict) -> bool:
        """istiod's native-sidecar decision for `pod`, as on the double (`native_sidecar`):
        the mode from the state directory, `auto` reading the nodes' kubelet versions."""
        mode = native_mode(self.state_dir)
        nodes: list[dict] = []
        if mode == "auto":
            status, body = self.cp.request("GET", "/api/v1/nodes")
            nodes = (body.get("items") or []) if status == 200 else []
        return native_sidecar(pod, mode, nodes)

    def start(self) -> "RealSandbox":
        """The control plane, then the node, Istio and the scenario: with the sandbox istiod
        (`_with_sandbox_istio`) or real Istio (`_with_real_istio`)."""
        docs = load_documents(self.scenarios)
        behaviours = Behaviours([x for x in docs if x.get("apiVersion") == BEHAVIOUR_API])
        objects = [x for x in docs if x.get("apiVersion") != BEHAVIOUR_API]
        if self.istio == "real":
            from .controlplane import locate_binaries
            bring_up = functools.partial(self._with_real_istio, binaries=locate_binaries())
        else:
            bring_up = functools.partial(self._with_sandbox_istio, crds=istio_crds())
        # a new cluster each time: the previous run's objects would outlive their CA
        shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)
        started = time.monotonic()

        def done(what: str) -> None:
            if self.verbose:
                print(f"sandbox: {what} ({time.monotonic() - started:.1f} s)", file=sys.stderr,
                      flush=True)
        try:
            # the double's context and cluster name, so `--context sandbox` works on both
            self.cp = cp = ControlPlane(self.state_dir, timeout=self.timeout, context="sandbox")
            cp.start(await_controllers=False)
            self._name_admin_as_the_double_does()
            done(f"kube-apiserver ready on {cp.server}")
            bring_up(cp, done, behaviours=behaviours, objects=objects)
        except ApplyError as e:
            self.stop()
            raise ScenarioError(str(e)) from None
        except BaseException:
            self.stop()
            raise
        self._write_status()
        return self

    def _with_sandbox_istio(self, cp: ControlPlane, done, *, crds: list[dict],
                            behaviours: Behaviours, objects: list[dict]) -> None:
        """Istio's CRDs and an injection webhook registered as Istio's chart does, the sandbox
        kubelet, then the scenario (its istiod runs as the sandbox istiod)."""
        applier = Applier(cp.request)
        self.webhook = InjectionWebhook(cp.address, cp.ca, native=self._native,
                                        cni=lambda: cni_enabled(self.state_dir)).start()
        applier.create(webhook_configuration(self.webhook.url, cp.ca.pem))
        # the CRDs (large: the API server takes seconds over them) while the node registers
        crd_errors: list[BaseException] = []
        crd_thread = threading.Thread(target=_collect_errors(applier.create_all, crd_errors),
                                      args=(crds,), daemon=True, name="istio-crds")
        crd_thread.start()
        refuse = self.state_dir / "refuse-websocket"
        if self.pod_network == "netns":  # for `down` after a crash (podnetwork.cleanup)
            record(self.state_dir, cp.addresses.network)
        # in pods' own network namespaces istio-init runs the real istio-iptables, so their
        # traffic is captured by their sidecars as on real Istio (`init_only_command`)
        capture = None
        if self.pod_network == "netns":
            from .istio.sidecar import init_only_command
            capture = init_only_command()
        self.kubelet = Kubelet(cp, state_dir=self.state_dir, behaviours=behaviours,
                               pod_kubeconfig=self._pod_kubeconfig(applier),
                               refuse_websocket=refuse.exists,
                               pod_network=self.pod_network, proxy_command=capture).start()
        done("node registered")
        # the scenario's built-in kinds while the CRDs are created: pods start sooner
        groups = {c["spec"]["group"] for c in crds}
        custom = [o for o in objects if o.get("apiVersion", "").split("/")[0] in groups]
        applier.create_all([o for o in objects if o not in custom])
        done("scenario's Kubernetes objects created")
        crd_thread.join()
        if crd_errors:
            raise crd_errors[0]
        applier.await_established([c["metadata"]["name"] for c in crds])
        done("Istio CRDs established")
        applier.create_all(custom)
        done("scenario's Istio objects created")
        cp.await_controllers()
        done("controller manager and scheduler ready")

    def _write_status(self) -> None:
        self.runtime = self.kubelet.runtime
        self._status_thread = threading.Thread(
            target=write_status_loop, args=(self.runtime, self.state_dir, self._status_stop),
            daemon=True, name="status")
        self._status_thread.start()

    def _with_real_istio(self, cp: ControlPlane, done, *, binaries: pathlib.Path,
                         behaviours: Behaviours, objects: list[dict]) -> None:
        """The node (`kubelet_for`: istiod's pod as the real
        pilot-discovery, injected pods' istio-init and istio-proxy as real pilot-agent and
        Envoy), Istio installed as `istioctl install` does (`install(..., istiod="pod")`),
        then the scenario without what the install provides (`istio.mesh.for_real_istio`),
        once istiod's injector can be called."""
        from .istio import install
        from .istio.install import InstallError
        from .istio.manifests import ManifestError
        from .istio.mesh import INSTALL_VALUES, for_real_istio
        from .istio.sidecar import kubelet_for
        record(self.state_dir, cp.addresses.network)  # for `down` after a crash
        refuse = self.state_dir / "refuse-websocket"
        self.kubelet = kubelet_for(cp, None, binaries=binaries, pod_network="netns",
                                   state_dir=self.state_dir, behaviours=behaviours,
                                   refuse_websocket=refuse.exists).start()
        done("node registered")
        try:
            install(cp, binaries / "istioctl", None, istiod="pod", extra=INSTALL_VALUES)
        except (InstallError, ManifestError) as e:
            raise ControlPlaneError(f"Istio's install failed: {e}") from None
        done("Istio installed (istioctl install's objects applied)")
        cp.await_controllers()
        done("controller manager and scheduler ready")
        self._await_injector()
        done("istiod's injector ready")
        Applier(cp.request).create_all(for_real_istio(objects))
        done("scenario created")

    def _await_injector(self) -> None:
        """Until istiod runs and has patched its root into the injector's webhooks: before,
        the API server cannot call it, and pods would be created without their sidecar."""
        deadline = time.monotonic() + self.timeout + 60
        path = ("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                "istio-sidecar-injector")
        while time.monotonic() < deadline:
            try:
                code, body = self.cp.request("GET", path)
            except OSError:  # a slow answer on a loaded machine: ask again
                time.sleep(0.5)
                continue
            hooks = body.get("webhooks") or [] if code == 200 else []
            if hooks and all((w.get("clientConfig") or {}).get("caBundle") for w in hooks):
                return
            time.sleep(0.5)
        raise ControlPlaneError("istiod did not patch its injector's caBundle in time (is its "
                                "pod running? kubectl get pods -n istio-system)")

    def _name_admin_as_the_double_does(self) -> None:
        """The kubeconfig's user entry named `sandbox-admin`, as the double names it (the
        identity stays the certificate's kubernetes-admin), so a kubeconfig that refers to
        cluster `sandbox` and user `sandbox-admin` works on either backend."""
        config = yaml.safe_load(self.kubeconfig_path.read_text())
        config["users"][0]["name"] = DOUBLE_ADMIN
        for context in config["contexts"]:
            context["context"]["user"] = DOUBLE_ADMIN
        write_private(self.kubeconfig_path, yaml.safe_dump(config, sort_keys=False))

    def _pod_kubeconfig(self, applier: Applier) -> pathlib.Path:
        """A kubeconfig for the pods (the sandbox istiod lists and watches with it): a token
        of service account kube-system/sandbox-pods, bound to cluster-admin, from the
        TokenRequest API (a bearer token, which the sandbox istiod's client reads). Pods in
        network namespaces reach the API server as the `kubernetes` Service's ClusterIP,
        as in-cluster clients do (client-go rest.InClusterConfig: KUBERNETES_SERVICE_HOST)."""
        ns, name = POD_IDENTITY
        applier.create({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": name, "namespace": ns}})
        applier.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                        "metadata": {"name": name},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                    "name": "cluster-admin"},
                        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]})
        code, body = self.cp.request(
            "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": TOKEN_SECONDS}})
        if code != 201:
            raise ControlPlaneError(f"TokenRequest for {ns}/{name}: {body.get('message', body)}")
        server = (f"https://{SERVICE_IP}:{SERVICE_PORT}" if self.pod_network == "netns"
                  else self.cp.server)
        return write_private(self.state_dir / "pods.kubeconfig", kubeconfig_for(
            server, self.cp.ca.pem, name, token=body["status"]["token"],
            name=self.cp.context))

    def not_ready(self) -> list[str]:
        """What is not Ready yet: Deployments short of ready replicas, and pods."""
        missing = []
        code, deployments = self.cp.request("GET", "/apis/apps/v1/deployments")
        for d in deployments.get("items") or [] if code == 200 else []:
            meta, spec, status = d["metadata"], d.get("spec") or {}, d.get("status") or {}
            want = spec.get("replicas", 1)
            if status.get("observedGeneration", 0) < meta.get("generation", 1) or \
                    status.get("readyReplicas", 0) < want or status.get("replicas", 0) != want:
                missing.append(f"deployment {meta['namespace']}/{meta['name']}")
        code, pods = self.cp.request("GET", "/api/v1/pods")
        items = pods.get("items") or [] if code == 200 else []
        missing += [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in items
                    if not pod_ready(p) and not p["metadata"].get("deletionTimestamp")
                    and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        return missing if items or missing else ["(no pods)"]

    def wait_ready(self, timeout: float = 60.0, stop: threading.Event | None = None) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            missing = self.not_ready()
            if not missing or time.monotonic() > deadline or stop and stop.is_set():
                return missing
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the status writer, the kubelet (every pod's processes), the webhook and the
        control plane, in that order; safe after a partial start."""
        started = time.monotonic()
        self._status_stop.set()
        if self._status_thread is not None:
            self._status_thread.join(5)
        if self.kubelet is not None:
            self.kubelet.stop()
            self.kubelet = None
        if self.webhook is not None:
            self.webhook.stop()
            self.webhook = None
        kubelet_stopped = time.monotonic()
        if self.cp is not None:
            self.cp.stop()
            self.cp = None
        if self.verbose:
            print(f"sandbox: pods stopped in {kubelet_stopped - started:.1f} s, control plane in "
                  f"{time.monotonic() - kubelet_stopped:.1f} s", file=sys.stderr, flush=True)
        status = self.state_dir / "status.json"
        if status.parent.is_dir():
            status.write_text("[]")



def _collect_errors(function, errors: list[BaseException]):
    """`function` for a thread: what it raises is appended to `errors` for the starter."""
    def run(*args):
        try:
            function(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the thread that waits
            errors.append(e)
    return run
