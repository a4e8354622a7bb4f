"""One sandbox per test module; `kubectl mesh sniff` through REAL kubectl; traffic helpers and
a check that no tcpdump of ours outlives a test."""

from __future__ import annotations

import os
import pathlib
import subprocess
import threading
import time
import urllib.request

import pytest

from sandbox.testing import MeshCli, RunningSandbox

GATEWAY_HOST = "catalog.istioinaction.io"


def _pod_ip_of(pid: str) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    return next((e[len(b"POD_IP="):].decode() for e in env if e.startswith(b"POD_IP=")), None)


def tcpdumps_for(ip: str) -> list[int]:
    """Pids of tcpdump processes whose argv mentions `ip` (the shim adds `host <ip>`), or,
    in a pod's own network namespace (`--pod-network netns`: no `host <ip>`), whose
    environment has POD_IP=`ip`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"tcpdump") and (
                any(ip.encode() in a for a in argv) or _pod_ip_of(entry) == ip):
            pids.append(int(entry))
    return pids


class Mesh(MeshCli):
    """`mesh(...)` runs `kubectl mesh sniff ...` (bytes out: captures go to stdout)."""

    def __init__(self, sandbox: RunningSandbox):
        super().__init__(sandbox, "sniff", text=False)

    def __call__(self, *args: str, env: dict | None = None, timeout: float = 90, input=None):
        return super().__call__(*args, env=env, timeout=timeout, input=input)

    def pod(self, namespace: str, selector: str, index: int = 0) -> dict:
        pods = sorted(self.sb.pods(namespace, selector), key=lambda p: p["metadata"]["name"])
        return pods[index]

    def kubeconfig_with_token(self, token: str, user: str, deny: list[str]) -> pathlib.Path:
        """A kubeconfig for a new sandbox user whose RBAC denies `deny`."""
        return self.sb.add_user(user, deny, token)


class Traffic:
    """GETs in a background thread until stopped."""

    def __init__(self, url: str, host: str | None = None, interval: float = 0.05):
        self.url, self.host, self.interval = url, host, interval
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            req = urllib.request.Request(self.url, headers={"Host": self.host} if self.host else {})
            try:
                urllib.request.urlopen(req, timeout=2).read()
                self.sent += 1
            except OSError:
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def mesh(sandbox) -> Mesh:
    return Mesh(sandbox)


def tshark(*args: str) -> str:
    out = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def wait_gone(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not predicate():
            return True
        time.sleep(0.1)
    return not predicate()


# A namespace without sidecar injection (`web`: its pod, for sniff on any pod), of an image the
# real backend's kubelet runs too (sandbox/real/kubelet/images.py); the web container ships
# tcpdump (sandbox/tools: the tools annotation), and the pod runs as root with the runtime's
# default NET_RAW.
PLAIN = """
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: plain}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {sandbox.kubectl-mesh.io/tools: "web=tcpdump"}
    spec:
      containers:
      - {name: helper, image: sandbox/app:helper, ports: [{containerPort: 3001}]}
      - {name: web, image: sandbox/app:web, ports: [{containerPort: 3000}]}
"""


@pytest.fixture(scope="module")
def web(sandbox) -> dict:
    sandbox.kubectl("apply", "-f", "-", input=PLAIN)
    sandbox.wait_for(lambda: [p for p in sandbox.pods("plain", "app=web")
                              if p["status"].get("phase") == "Running"
                              and p["status"].get("podIP")], timeout=60, what="plain web pod")
    pod = sandbox.pods("plain", "app=web")[0]
    assert "istio-proxy" not in [c["name"] for c in pod["spec"]["containers"]]
    return pod
