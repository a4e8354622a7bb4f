"""The node's pod network: each pod in a network namespace of its own, on a bridge.

What a CNI bridge plugin sets up on a real node (containernetworking/plugins
plugins/main/bridge/bridge.go `cmdAdd`: a bridge with the gateway address, one veth pair per
pod sandbox with one end in the pod's namespace as `eth0`, an address from the node's pod CIDR
by host-local IPAM, a default route via the gateway):

- the bridge `kmesh<N>` with 10.244.<N>.1/24, where N is the number of the 127.N network the
  control plane leased (`sandbox.network.AddressPool`), so parallel sandboxes never share a
  bridge, a CIDR or a name; the API server's service CIDR (10.96.0.0/16,
  `sandbox.real.controlplane.SERVICE_CIDR`) does not overlap it;
- per pod a namespace `kmesh<N>-<pod UID>` (`ip netns add`), a veth pair `kv<N>p<host byte>`
  ↔ `eth0` in the bridge, `lo` up, the pod IP 10.244.<N>.<host byte> and a default route via
  the bridge. Pods reach each other and the node by IP; the node reaches them by pod IP;
- the `kubernetes` Service's ClusterIP 10.96.0.1:443 → the API server on 127.N.0.1:6443 by
  DNAT on the bridge, as kube-proxy programs a ClusterIP (pkg/proxy/iptables/proxier.go: a
  KUBE-SERVICES → KUBE-SVC → KUBE-SEP DNAT), and `route_localnet` on the bridge because the
  endpoint is a loopback address (what kube-proxy sets for localhost NodePorts,
  pkg/proxy/iptables/proxier.go `sysctlRouteLocalnet`). Pods' kubeconfig names
  https://10.96.0.1 (the API server's serving certificate holds that address);
- traffic from the bridge is never forwarded off the bridge (a FORWARD DROP), so no pod can
  send to an address outside this machine.

Every rule carries the comment `kmesh<N>`, every link and namespace a name with that number:
`cleanup(N)` removes all of them, at start (a crashed sandbox's leftovers: the lease on N is
free again only once its holder is dead), at stop and from `python -m sandbox down`.

Processes join a pod's namespace by setns(2) in the child before exec (`PodAddress.enter`,
as runc joins the sandbox's netns path from the OCI spec); the node dials a pod's port from
inside its namespace to localhost, then the pod IP from the node's namespace. That is the
port-forward path of a real node: the kubelet's `/portForward` (pkg/kubelet/server/server.go
`getPortForward`) asks the runtime for a stream URL (pkg/kubelet/kuberuntime/
kuberuntime_sandbox.go `GetPortForward` → CRI `PortForward`), and containerd's streaming
server connects inside the sandbox's namespace (internal/cri/server/
sandbox_portforward_linux.go `portForward`: `netNSDo` + `dialLocalhost`, falling back to
`dialPodIPs` from the host's namespace)."""

from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import os
import pathlib
import re
import socket
import subprocess
import threading
from typing import Callable

from ...network import LEASE_DIR, AddressPool, PodAddress
from . import dns

CLONE_NEWNET = 0x40000000
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service (first address of the service CIDR)
SERVICE_PORT = 443
NETNS_DIR = "/run/netns"
_libc = ctypes.CDLL(None, use_errno=True)


POD_NETWORKS = ("netns", "loopback")
DEFAULT_POD_NETWORK = "netns"  # as root; otherwise "loopback" (`default_pod_network`)
POD_NETWORK_ENV = "SANDBOX_POD_NETWORK"  # the default of `python -m sandbox up --pod-network`
RECORD = "pod-network"  # in a sandbox's state directory: the number of its pod network


def default_pod_network() -> str:
    """$SANDBOX_POD_NETWORK if it names one, else DEFAULT_POD_NETWORK where it can be made
    (namespaces, links and iptables rules need root), else "loopback"."""
    chosen = os.environ.get(POD_NETWORK_ENV, "")
    if chosen in POD_NETWORKS:
        return chosen
    return DEFAULT_POD_NETWORK if os.geteuid() == 0 else "loopback"


class PodNetworkError(RuntimeError):
    pass


def record(state_dir, number: int) -> None:
    """Note in `state_dir` which pod network the sandbox there makes."""
    (state_dir / RECORD).write_text(str(number))


def cleanup_recorded(state_dir) -> list[str]:
    """After the sandbox of `state_dir` has ended: remove what is left of the pod network it
    recorded, unless another sandbox holds that network's lease by now."""
    path = state_dir / RECORD
    try:
        number = int(path.read_text())
    except (OSError, ValueError):
        return []
    removed = []
    lease = lease_if_free(number)
    if lease is not None:
        try:
            removed = cleanup(number)
        finally:
            os.close(lease)
    path.unlink(missing_ok=True)
    return removed


def lease_if_free(number: int) -> int | None:
    """The lease on the 127.<number> network (`sandbox.network.AddressPool`) if nobody holds
    it (an fd to close), else None."""
    try:
        fd = os.open(LEASE_DIR / f"{number}.lock", os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def setns(fd: int) -> None:
    """Move the calling thread (or a child before exec) into the network namespace `fd`."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _run(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    out = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise PodNetworkError(f"{' '.join(argv)}: {out.stderr.strip() or out.returncode}")
    return out.stdout


def gateway(number: int) -> str:
    """The bridge's address of pod network `number`: the pods' default route, the node."""
    return f"10.244.{number}.1"


def names(number: int) -> tuple[str, str, str]:
    """(bridge, namespace prefix, host veth prefix) of the pod network numbered `number`."""
    return f"kmesh{number}", f"kmesh{number}-", f"kv{number}p"


def cleanup(number: int) -> list[str]:
    """Remove every namespace, link and iptables rule of pod network `number`; what was
    removed (empty when nothing was left)."""
    bridge, ns_prefix, veth_prefix = names(number)
    removed = []
    for line in _run("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(ns_prefix):
            _run("ip", "netns", "delete", name, check=False)
            removed.append(f"netns {name}")
    for line in _run("ip", "-o", "link", "show", check=False).splitlines():
        m = re.match(r"\d+: ([^:@]+)[:@]", line)
        if m and (m.group(1) == bridge or m.group(1).startswith(veth_prefix)):
            _run("ip", "link", "delete", m.group(1), check=False)
            removed.append(f"link {m.group(1)}")
    for table in ("nat", "filter"):
        for rule in _run("iptables", "-w", "-t", table, "-S", check=False).splitlines():
            if f"--comment {bridge} " in rule + " " and rule.startswith("-A "):
                _run("iptables", "-w", "-t", table, *["-D", *rule.split()[1:]], check=False)
                removed.append(f"iptables -t {table} {rule}")
    removed += remove_chains(f"{bridge}-")  # the service proxy's (serviceproxy.py)
    removed += dns.remove_resolv_confs(ns_prefix)
    return removed


def remove_chains(prefix: str) -> list[str]:
    """Flush then delete every nat and filter chain whose name starts with `prefix` (once
    no rule jumps to them); the chains removed."""
    removed = []
    for table in ("nat", "filter"):
        chains = [line.split()[1] for line in
                  _run("iptables", "-w", "-t", table, "-S", check=False).splitlines()
                  if line.startswith(f"-N {prefix}")]
        for chain in chains:
            _run("iptables", "-w", "-t", table, "-F", chain, check=False)
        for chain in chains:
            _run("iptables", "-w", "-t", table, "-X", chain, check=False)
            removed.append(f"iptables -t {table} chain {chain}")
    return removed


@dataclasses.dataclass
class NamespacedAddress(PodAddress):
    """A pod in its own network namespace: servers bind what they like (Envoy's admin on
    127.0.0.1:15000, as Istio's bootstrap has it); the node reaches them as containerd does."""
    fd: int = -1  # an open /run/netns/<name>, for setns
    resolv_conf: str | None = None  # bind-mounted over /etc/resolv.conf (dns.py)

    @property
    def admin_address(self) -> str:
        # tools/packaging/common/envoy_bootstrap.json: "admin" on {{ .localhost }}
        return "127.0.0.1"

    @property
    def enter(self) -> Callable[[], None]:
        fd, resolv_conf = self.fd, self.resolv_conf

        def enter() -> None:
            setns(fd)
            if resolv_conf:
                dns.mount_resolv_conf(resolv_conf)
        return enter

    def dial(self, port: int, timeout: float = 5.0) -> socket.socket:
        """localhost:port, else the pod IP, both from inside the namespace (the kubelet's
        port-forward and the sandbox's readiness check). A runtime dials localhost in the pod's
        namespace (containerd's `portForward` in `netNSDo`), where containers listen on
        0.0.0.0; the sandbox's apps listen on the pod IP, so that is dialled too – from inside,
        never from the node: from the node the pod IP goes through istio-init's
        ISTIO_INBOUND to Envoy's 15006, which accepts a connection to any port (a closed one
        too, then resets it) and before the app listens; inside, a root process's connection
        to its own address leaves by `lo` and ISTIO_OUTPUT returns it uncaptured (`-o lo -m
        owner ! --uid-owner 1337 -j RETURN`: tools/istio-iptables/pkg/capture/run.go `Run`)."""
        def connect() -> socket.socket:
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=timeout)
            except OSError:
                return socket.create_connection((self.ip, port), timeout=timeout)
        return self.inside(connect)

    def inside(self, function):
        """`function()` run by a thread that entered the pod's namespace (setns acts on the
        calling thread only; the thread ends with it): a socket it makes stays in there."""
        result: dict = {}

        def run() -> None:
            try:
                setns(self.fd)
                result["value"] = function()
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                result["error"] = e
        thread = threading.Thread(target=run, name=f"in-{self.netns}", daemon=True)
        thread.start()
        thread.join()
        if "error" in result:
            raise result["error"]
        return result["value"]


class PodNetwork:
    """The pod addresses of a kubelet whose pods each get a network namespace: the same
    `attach`/`detach`/`network`/`release` surface as `AddressPool` (hostNetwork pods get an
    address of `loopback`, the control plane's pool, as before)."""

    def __init__(self, loopback: AddressPool, api_address: tuple[str, int]):
        self.loopback = loopback
        self.network = loopback.network
        self.bridge, self._ns_prefix, self._veth_prefix = names(self.network)
        self.subnet = f"10.244.{self.network}"
        self.gateway = gateway(self.network)
        self.api_address = api_address
        self._lock = threading.Lock()
        self._free = list(range(2, 255))
        self._pods: dict[str, NamespacedAddress] = {}  # by namespace name
        self._started = False

    @property
    def server(self) -> str:
        """The API server's URL as pods see it: the `kubernetes` Service's ClusterIP."""
        return f"https://{SERVICE_IP}:{SERVICE_PORT}"

    def start(self) -> "PodNetwork":
        """Remove what a crashed sandbox on this network left, then make the bridge and the
        rules."""
        cleanup(self.network)
        self._started = True
        comment = ["-m", "comment", "--comment", self.bridge]
        _run("ip", "-batch", "-", stdin=(
            f"link add {self.bridge} type bridge\n"
            f"addr add {self.gateway}/24 dev {self.bridge}\n"
            f"link set {self.bridge} up\n"))
        # The bridge's MAC set to itself, or it takes its lowest-numbered port's and changes
        # as pods come and go: pods' ARP entries for the gateway (DNS, the API server's
        # DNAT) go stale for seconds (plugins/main/bridge/bridge.go `ensureAddr`).
        mac = pathlib.Path(f"/sys/class/net/{self.bridge}/address").read_text().strip()
        _run("ip", "link", "set", self.bridge, "address", mac)
        _run("sysctl", "-qw", f"net.ipv4.conf.{self.bridge}.route_localnet=1")
        host, port = self.api_address
        _run("iptables", "-w", "-t", "nat", "-A", "PREROUTING", "-i", self.bridge,
             "-d", SERVICE_IP, "-p", "tcp", "--dport", str(SERVICE_PORT), *comment,
             "-j", "DNAT", "--to-destination", f"{host}:{port}")
        _run("iptables", "-w", "-t", "filter", "-I", "FORWARD", "-i", self.bridge, "!", "-o",
             self.bridge, *comment, "-j", "DROP")
        return self

    def forward(self, port: int, host: str, target_port: int) -> None:
        """Pods reach `host:target_port`, a server of the node on a loopback address, at the
        gateway's `port` (a DNAT on the bridge, like the `kubernetes` Service's; removed with
        the network's other rules)."""
        _run("iptables", "-w", "-t", "nat", "-A", "PREROUTING", "-i", self.bridge,
             "-d", self.gateway, "-p", "tcp", "--dport", str(port),
             "-m", "comment", "--comment", self.bridge,
             "-j", "DNAT", "--to-destination", f"{host}:{target_port}")

    def attach(self, pod: dict) -> PodAddress:
        """A namespace with a veth into the bridge and an address for `pod` (a hostNetwork
        pod: an address on the node's loopback network, no namespace)."""
        if (pod.get("spec") or {}).get("hostNetwork"):
            return self.loopback.attach(pod)
        with self._lock:
            if not self._free:
                raise PodNetworkError(f"no free address left in {self.subnet}.0/24")
            host = self._free.pop(0)
        ip, name = f"{self.subnet}.{host}", f"{self._ns_prefix}{pod['metadata']['uid']}"
        veth = f"{self._veth_prefix}{host}"
        try:
            _run("ip", "netns", "add", name)
            _run("ip", "-batch", "-", stdin=(
                f"link add {veth} type veth peer name eth0 netns {name}\n"
                f"link set {veth} master {self.bridge} up\n"
                # a pod reaching itself through its Service: with br_netfilter the DNATed
                # frame is bridged back out of the port it came in on (the bridge plugin's
                # `hairpinMode`, plugins/main/bridge/bridge.go `setupVeth`: LinkSetHairpin)
                f"link set {veth} type bridge_slave hairpin on\n"))
            _run("ip", "-n", name, "-batch", "-", stdin=(
                f"addr add {ip}/24 dev eth0\n"
                "link set lo up\n"
                "link set eth0 up\n"
                f"route add default via {self.gateway}\n"))
            fd = os.open(f"{NETNS_DIR}/{name}", os.O_RDONLY | os.O_CLOEXEC)
            resolv_conf = dns.write_resolv_conf(name, pod, self.gateway)
        except (PodNetworkError, OSError):
            self._remove(name, veth, host)
            raise
        address = NamespacedAddress(ip, netns=name, fd=fd, resolv_conf=resolv_conf)
        with self._lock:
            self._pods[name] = address
        return address

    def detach(self, address: PodAddress) -> None:
        """The pod's processes are gone: remove its namespace and veth, free its address."""
        if not isinstance(address, NamespacedAddress):
            return self.loopback.detach(address)
        with self._lock:
            if self._pods.pop(address.netns, None) is None:
                return
        host = int(address.ip.rsplit(".", 1)[1])
        try:
            os.close(address.fd)
        except OSError:
            pass
        self._remove(address.netns, f"{self._veth_prefix}{host}", host)

    def _remove(self, name: str, veth: str, host: int) -> None:
        _run("ip", "link", "delete", veth, check=False)
        _run("ip", "netns", "delete", name, check=False)
        dns.remove_resolv_confs(name)
        with self._lock:
            self._free.append(host)

    def release(self) -> None:
        """Remove every namespace, link and rule (the loopback pool is its owner's)."""
        with self._lock:
            pods, self._pods = list(self._pods.values()), {}
        for address in pods:
            try:
                os.close(address.fd)
            except OSError:
                pass
        if self._started:
            cleanup(self.network)
            self._started = False
