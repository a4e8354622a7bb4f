"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, built from their Go modules (scripts/real_components.sh), with a CA of its own,
client-certificate users, service-account signing keys (TokenRequest), the RBAC and Node
authorizers and the default admission chain (Pod Security included).

Everything binds to one address of a leased 127.N network (`network.AddressPool`), so several
control planes – parallel test modules, a demo – never share a port. Each component is a child
process in its own session that also dies with its parent (PR_SET_PDEATHSIG), and `stop()`
ends them in reverse order."""

from __future__ import annotations

import base64
import ctypes
import dataclasses
import json
import os
import pathlib
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import yaml

from ..credentials import write_private
from ..network import AddressPool
from ..apiserver import pki

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "real_components.sh"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
SERVICE_CIDR = "10.96.0.0/16"
ISSUER = "https://kubernetes.default.svc.cluster.local"
PR_SET_PDEATHSIG = 1


class ControlPlaneError(Exception):
    pass


def locate_binaries() -> pathlib.Path:
    """The cache directory `make real-components` builds into; an error naming the command
    to run when the components are not built yet."""
    out = subprocess.run(["bash", str(BUILD_SCRIPT), "--dir"], capture_output=True, text=True,
                         timeout=60)
    if out.returncode != 0:
        raise ControlPlaneError(out.stderr.strip() or "scripts/real_components.sh --dir failed")
    directory = pathlib.Path(out.stdout.strip())
    missing = [c for c in COMPONENTS if not os.access(directory / c, os.X_OK)]
    if missing:
        raise ControlPlaneError(f"{', '.join(missing)} not built in {directory}: "
                                f"run 'make real-components'")
    return directory


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the process that started it dies, however it
    dies (kill -9 included), so no component outlives its supervisor."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class StartedOnEnter:
    """`with X(...) as x:` starts x (`start()`), and stops it (`stop()`) when the block ends
    or when starting fails half-way, so nothing a failed start began keeps running."""

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclasses.dataclass
class Component:
    name: str
    process: subprocess.Popen
    log: pathlib.Path


def kubeconfig_for(server: str, ca_pem: bytes, user: str, pair: pki.Pair | None = None,
                   token: str | None = None, namespace: str = "default",
                   name: str = "sandbox-real") -> str:
    """A kubeconfig (cluster and context `name`) for a client-certificate or bearer-token
    user."""
    credentials: dict = {}
    if pair is not None:
        credentials = {"client-certificate-data": base64.b64encode(pair.cert.read_bytes()).decode(),
                       "client-key-data": base64.b64encode(pair.key.read_bytes()).decode()}
    if token is not None:
        credentials = {"token": token}
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": name, "context": {
            "cluster": name, "user": user, "namespace": namespace}}],
        "current-context": name,
    }, sort_keys=False)


class ControlPlane(StartedOnEnter):
    """`with ControlPlane(state_dir) as cp:` – cp.kubeconfig is the admin's kubeconfig."""

    def __init__(self, state_dir: pathlib.Path, *, binaries: pathlib.Path | None = None,
                 feature_gates: dict[str, bool] | None = None, timeout: float = 90.0,
                 context: str = "sandbox-real"):
        """`context`: the name of the cluster and context in the kubeconfigs it writes."""
        self.context = context
        self.state_dir = pathlib.Path(state_dir).resolve()
        self.binaries = binaries
        self.feature_gates = dict(feature_gates or {})
        self.timeout = timeout
        self.components: list[Component] = []
        self._pool: AddressPool | None = None

    # -- life cycle
    def start(self, *, await_controllers: bool = True) -> "ControlPlane":
        """Start every component; with `await_controllers=False` return once the API server
        is ready (the controller manager and scheduler still starting: `await_controllers()`
        waits for them), so a caller can register a node and create objects meanwhile."""
        self.binaries = self.binaries or locate_binaries()
        d = self.state_dir
        d.mkdir(parents=True, exist_ok=True)
        (d / "logs").mkdir(exist_ok=True)
        self._pool = AddressPool()
        self.address = f"127.{self._pool.network}.0.1"
        self.server = f"https://{self.address}:6443"
        self.ca = pki.Authority(d / "pki")
        self._issue_certificates()
        deadline = time.monotonic() + self.timeout
        self._start_etcd()
        self._await("etcd", lambda: self._http_ok(f"http://{self.address}:2379/health"), deadline)
        self._start_apiserver()
        self._await("kube-apiserver", lambda: self._http_ok(f"{self.server}/readyz"), deadline)
        self._start_controller_manager()
        self._start_scheduler()
        self._deadline = deadline
        if await_controllers:
            self.await_controllers()
        return self

    def await_controllers(self) -> None:
        deadline = self._deadline
        self._await("kube-controller-manager (default service account)",
                    lambda: self._http_ok(f"{self.server}/api/v1/namespaces/default/serviceaccounts/default"),
                    deadline)
        self._await("kube-scheduler", lambda: self._http_ok(f"https://{self.address}:10259/healthz",
                                                             verify=False), deadline)

    def stop(self) -> None:
        # One after the other, etcd last: an API server whose etcd is gone spends its whole
        # grace period retrying it. A sandbox's cluster needs no long graceful drain.
        for c in reversed(self.components):
            stop_group(c.process, grace=2)
        self.components.clear()
        if self._pool is not None:
            self._pool.release()
            self._pool = None

    @property
    def addresses(self) -> AddressPool:
        """The leased 127.N network: the control plane is on .0.1, pods take the others."""
        if self._pool is None:
            raise ControlPlaneError("the control plane is not running")
        return self._pool

    # -- users
    def add_user(self, name: str, *, groups: tuple[str, ...] = (), namespace: str = "default") -> pathlib.Path:
        """A client-certificate user `name` (no rights until a binding grants some); returns
        the path of its kubeconfig."""
        pair = self.ca.issue(f"user-{name}", name, organizations=groups)
        return write_private(self.state_dir / f"kubeconfig-{name}",
                              kubeconfig_for(self.server, self.ca.pem, name, pair, namespace=namespace,
                                             name=self.context))

    # -- internals
    def _issue_certificates(self) -> None:
        ca = self.ca
        names = (self.address, "127.0.0.1", "localhost", "10.96.0.1", "kubernetes",
                 "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
        self.serving = ca.issue("apiserver", "kube-apiserver", server_names=names, client=False)
        self.kubelet_client = ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                       organizations=("system:masters",))
        self.sa = pki.write_service_account_keys(ca.directory)
        admin = ca.issue("admin", "kubernetes-admin", organizations=("system:masters",))
        self.kubeconfig = write_private(self.state_dir / "kubeconfig",
                                         kubeconfig_for(self.server, ca.pem, "kubernetes-admin", admin,
                                                        name=self.context))
        self._admin = admin
        for user, cn in (("controller-manager", "system:kube-controller-manager"),
                         ("scheduler", "system:kube-scheduler")):
            pair = ca.issue(user, cn)
            write_private(self.state_dir / f"{user}.kubeconfig",
                           kubeconfig_for(self.server, ca.pem, cn, pair))

    def _spawn(self, name: str, args: list[str]) -> None:
        log = self.state_dir / "logs" / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen([str(self.binaries / name), *args], stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT, cwd=self.state_dir,
                                       start_new_session=True, preexec_fn=_die_with_parent)
        self.components.append(Component(name, process, log))

    def _start_etcd(self) -> None:
        a = self.address
        data = self.state_dir / "etcd"
        data.mkdir(mode=0o700, exist_ok=True)
        self._spawn("etcd", [
            "--name=sandbox", f"--data-dir={data}",
            f"--listen-client-urls=http://{a}:2379", f"--advertise-client-urls=http://{a}:2379",
            f"--listen-peer-urls=http://{a}:2380", f"--initial-advertise-peer-urls=http://{a}:2380",
            f"--initial-cluster=sandbox=http://{a}:2380", "--unsafe-no-fsync=true",
            "--log-level=warn"])

    def _start_apiserver(self) -> None:
        a, pkidir = self.address, self.ca.directory
        gates = ",".join(f"{k}={str(v).lower()}" for k, v in sorted(self.feature_gates.items()))
        self._spawn("kube-apiserver", [
            f"--etcd-servers=http://{a}:2379",
            f"--bind-address={a}", "--secure-port=6443", f"--advertise-address={a}",
            f"--tls-cert-file={self.serving.cert}", f"--tls-private-key-file={self.serving.key}",
            f"--client-ca-file={pkidir / 'ca.crt'}",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={self.sa.cert}",
            f"--service-account-signing-key-file={self.sa.key}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--kubelet-client-certificate={self.kubelet_client.cert}",
            f"--kubelet-client-key={self.kubelet_client.key}",
            f"--kubelet-certificate-authority={pkidir / 'ca.crt'}",
            # The node's Hostname address is its name, which no resolver knows on loopback:
            # reach kubelets on their InternalIP first (the default order puts Hostname first,
            # cmd/kube-apiserver/app/options/options.go NewServerRunOptions).
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            # The endpoint reconciler refuses loopback addresses for the `kubernetes` Service
            # (pkg/controlplane/reconcilers); pods are given the API server's address instead.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true", "--profiling=false",
            *([f"--feature-gates={gates}"] if gates else [])])

    def _start_controller_manager(self) -> None:
        kc, pkidir = self.state_dir / "controller-manager.kubeconfig", self.ca.directory
        self._spawn("kube-controller-manager", [
            f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            f"--bind-address={self.address}", "--secure-port=10257", "--leader-elect=false",
            f"--service-account-private-key-file={self.sa.key}", f"--root-ca-file={pkidir / 'ca.crt'}",
            f"--cluster-signing-cert-file={pkidir / 'ca.crt'}",
            f"--cluster-signing-key-file={pkidir / 'ca.key'}",
            "--use-service-account-credentials=true", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false"])

    def _start_scheduler(self) -> None:
        kc = self.state_dir / "scheduler.kubeconfig"
        self._spawn("kube-scheduler", [
            f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            f"--bind-address={self.address}", "--secure-port=10259", "--leader-elect=false",
            "--profiling=false"])

    def _await(self, what: str, ready, deadline: float) -> None:
        while True:
            dead = [c for c in self.components if c.process.poll() is not None]
            if dead:
                c = dead[0]
                raise ControlPlaneError(f"{c.name} exited with {c.process.returncode}: "
                                        f"{_tail(c.log)}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{what} not ready after {self.timeout:.0f} s; logs in "
                                        f"{self.state_dir / 'logs'}")
            time.sleep(0.2)

    def _http_ok(self, url: str, verify: bool = True) -> bool:
        context = None
        if url.startswith("https"):
            context = ssl.create_default_context(cafile=str(self.ca.pair.cert))
            context.load_cert_chain(str(self._admin.cert), str(self._admin.key))
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(url, context=context, timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """One request as the admin; (status, decoded JSON body)."""
        context = ssl.create_default_context(cafile=str(self.ca.pair.cert))
        context.load_cert_chain(str(self._admin.cert), str(self._admin.key))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            # 30 s: on a loaded 2-core machine a new CRD's first write has taken over 10 s
            with urllib.request.urlopen(req, context=context, timeout=30) as r:
                return r.status, decode_body(r.read())
        except urllib.error.HTTPError as e:
            return e.code, decode_body(e.read())


def decode_body(data: bytes) -> dict:
    """A JSON body, or a plain-text one (`404 page not found` for a path no API serves) as
    {"message": text}."""
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        return {"message": data.decode(errors="replace").strip()}
    return body if isinstance(body, dict) else {"message": str(body)}


def stop_group(p: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the process's group, SIGKILL after `grace` seconds; returns once it ended."""
    _signal_group(p, signal.SIGTERM)
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(p, signal.SIGKILL)
        p.wait(timeout=15)


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass


def _tail(path: pathlib.Path, size: int = 2000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace")
    except OSError:
        return ""
