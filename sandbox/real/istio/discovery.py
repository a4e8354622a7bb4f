"""The real istiod (`pilot-discovery discovery`) as a host process beside the real control
plane, as an external control plane runs it: a kubeconfig for the API server instead of the
in-cluster service account, its own loopback address of the control plane's leased 127.N
network for every port.

The process gets the environment the istiod Deployment of the istio-discovery chart gives its
container (templates/deployment.yaml: REVISION, PILOT_CERT_PROVIDER=istiod, POD_NAME,
POD_NAMESPACE, SERVICE_ACCOUNT, CLUSTER_ID, PILOT_ENABLE_ANALYSIS) plus ISTIOD_CUSTOM_HOST =
its address, so the serving certificate of its self-signed CA names that IP (pilot/pkg/
bootstrap/server.go `getDNSNames`; security/pkg/pki/util/san.go turns an IP host into an IP
SAN) and the API server can call the webhooks by `url: https://<address>:15017/...`.

Its identity is the `istiod` ServiceAccount of istio-system (a TokenRequest token in the
kubeconfig), so it has exactly the RBAC the chart grants. Relative paths it writes (the
self-signed CA's ./etc/cacerts lookup, ./var/run/secrets/istio-dns) land in its state
directory, its working directory."""

from __future__ import annotations

import os
import pathlib
import subprocess
import time
import urllib.error
import urllib.request

from ...credentials import write_private
from ..controlplane import (StartedOnEnter, _die_with_parent, _tail, kubeconfig_for,
                            locate_binaries, stop_group)
from .manifests import NAMESPACE

SERVICE_ACCOUNT = "istiod"
TOKEN_SECONDS = 24 * 3600
PORTS = {"http": 8080, "grpc": 15010, "secure_grpc": 15012, "monitoring": 15014,
         "webhook": 15017, "ctrlz": 9876}


class IstiodError(Exception):
    pass


class Istiod(StartedOnEnter):
    """`Istiod(cp)` leases its address at once (install() needs it for the webhook URLs);
    `start()` runs pilot-discovery and waits until /ready answers 200."""

    def __init__(self, cp, *, env: dict[str, str] | None = None,
                 binaries: pathlib.Path | None = None, timeout: float = 90.0,
                 name: str = "istiod-host", hosts: tuple[str, ...] = ()):
        """`hosts`: more names or IPs its serving certificate is to carry (where pods in a
        network namespace of their own reach it)."""
        self.cp = cp
        self.address = cp.addresses.allocate()
        self.binaries = binaries
        self.env = dict(env or {})
        self.timeout = timeout
        self.name = name
        self.hosts = tuple(hosts)
        self.state_dir = cp.state_dir / name
        self.log = cp.state_dir / "logs" / f"{name}.log"
        self.process: subprocess.Popen | None = None

    # -- addresses
    def url(self, port: str) -> str:
        scheme = "https" if port == "webhook" else "http"
        return f"{scheme}://{self.address}:{PORTS[port]}"

    def hostport(self, port: str) -> str:
        return f"{self.address}:{PORTS[port]}"

    # -- life cycle
    def start(self) -> "Istiod":
        binaries = self.binaries or locate_binaries()
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        kubeconfig = write_private(self.state_dir / "kubeconfig", kubeconfig_for(
            self.cp.server, self.cp.ca.pem, f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}",
            token=self._token(), namespace=NAMESPACE))
        args = [str(binaries / "pilot-discovery"), "discovery",
                f"--kubeconfig={kubeconfig}",
                f"--httpAddr={self.hostport('http')}", f"--grpcAddr={self.hostport('grpc')}",
                f"--secureGRPCAddr={self.hostport('secure_grpc')}",
                f"--monitoringAddr={self.hostport('monitoring')}",
                f"--httpsAddr={self.hostport('webhook')}",
                f"--ctrlz_address={self.address}", f"--ctrlz_port={PORTS['ctrlz']}",
                "--log_output_level=default:info", "--domain", "cluster.local",
                "--keepaliveMaxServerConnectionAge", "30m"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.state_dir),
               "REVISION": "default", "PILOT_CERT_PROVIDER": "istiod", "POD_NAME": self.name,
               "POD_NAMESPACE": NAMESPACE, "SERVICE_ACCOUNT": SERVICE_ACCOUNT,
               "CLUSTER_ID": "Kubernetes", "PILOT_ENABLE_ANALYSIS": "false",
               "PILOT_TRACE_SAMPLING": "1",
               # each comma-separated name a SAN (server.go `getDNSNames`)
               "ISTIOD_CUSTOM_HOST": ",".join((self.address, *self.hosts)),
               "KUBECONFIG": str(kubeconfig), **self.env}
        self.log.parent.mkdir(exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, cwd=self.state_dir, env=env,
                                            start_new_session=True, preexec_fn=_die_with_parent)
        self._await_ready()
        return self

    def restart(self, env: dict[str, str]) -> "Istiod":
        """Stop, then start again on the same address with `env` added to the environment
        (feature flags are read once, at start: pilot/pkg/features)."""
        self.stop()
        self.env.update(env)
        return self.start()

    def stop(self) -> None:
        p, self.process = self.process, None
        if p is not None:
            stop_group(p, grace=10)

    # -- internals
    def _token(self) -> str:
        code, body = self.cp.request(
            "POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": TOKEN_SECONDS}})
        if code != 201:
            raise IstiodError(f"no token for serviceaccount {NAMESPACE}/{SERVICE_ACCOUNT} "
                              f"({code}: {body.get('message')}): is Istio installed?")
        return body["status"]["token"]

    def _await_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                raise IstiodError(f"pilot-discovery exited with {self.process.returncode}: "
                                  f"{_tail(self.log)}")
            try:
                with urllib.request.urlopen(self.url("http") + "/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise IstiodError(f"pilot-discovery not ready after {self.timeout:.0f} s; "
                                  f"log in {self.log}")
            time.sleep(0.3)
