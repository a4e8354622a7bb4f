"""The node's service proxy: ClusterIP:port → a ready endpoint, by iptables DNAT, as
kube-proxy's iptables mode programs it (pkg/proxy/iptables/proxier.go `syncProxyRules`).

The chain layout is the real one with the pod network's name `kmesh<N>` in place of `KUBE`
(so parallel sandboxes never share a chain, and `podnetwork.cleanup` finds a killed run's
chains by that prefix):

- nat `kmesh<N>-SERVICES`, jumped to from OUTPUT (the node's own connections: the API server
  calling a webhook, tests) and PREROUTING from the bridge (pods): one rule per service port
  `-d <ClusterIP> -p <proto> --dport <port> -j kmesh<N>-SVC-<hash>`;
- `kmesh<N>-SVC-<hash>`: traffic from outside the pod CIDR is marked for masquerade
  (`localDetector.IfNotLocal()`), then one rule per endpoint, each but the last matching
  `-m statistic --mode random --probability 1/(n-i)` (`writeServiceToEndpointRules`), to
- `kmesh<N>-SEP-<hash>`: `-s <endpoint IP> -j kmesh<N>-MARK-MASQ` (a pod reaching itself
  through its Service: hairpin, answered to the gateway instead of to itself), then
  `-j DNAT --to-destination <ip:port>`;
- `kmesh<N>-MARK-MASQ` sets mark 0x4000, `kmesh<N>-POSTROUTING` (from POSTROUTING out of the
  bridge) masquerades what carries it and clears the mark;
- filter `kmesh<N>-SERVICES` (OUTPUT and FORWARD, conntrack NEW): a port without a ready
  endpoint is REJECTed ("has no endpoints": connection refused, not a timeout), and
  `kmesh<N>-FORWARD` accepts what the bridge routes back into itself (pod → Service → pod).

Chain names hash the service port name and protocol (and the endpoint), base32 of sha256 as
`portProtoHash`/`servicePortEndpointChainName`, cut to fit iptables' 28 characters. Each sync
rewrites every chain in one `iptables-restore --noflush` (declared chains are flushed and
refilled, chains no longer used deleted), as the real proxier's full sync does.

The `kubernetes` Service is left to the pod network's own rule (its endpoint is the API server
on a loopback address, which no EndpointSlice may hold: the control plane runs with
`--endpoint-reconciler-type=none`)."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import threading

from .podnetwork import SERVICE_IP, PodNetworkError, _run, remove_chains
from .services import ClusterServices

MASQ_MARK = "0x4000"  # kube-proxy's default --iptables-masquerade-bit 14


def _hash(text: str, size: int) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:size]


class ServiceProxy:
    def __init__(self, services: ClusterServices, bridge: str, pod_cidr: str):
        self.services = services
        self.bridge = bridge
        self.pod_cidr = pod_cidr
        self.prefix = f"{bridge}-"
        self._hash_size = 28 - len(f"{self.prefix}SVC-")
        self._chains: dict[str, set[str]] = {"nat": set(), "filter": set()}
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="service-proxy")
        self._jumps = [
            ("nat", "OUTPUT", ["-j", self._c("SERVICES")]),
            ("nat", "PREROUTING", ["-i", bridge, "-j", self._c("SERVICES")]),
            ("nat", "POSTROUTING", ["-o", bridge, "-j", self._c("POSTROUTING")]),
            ("filter", "OUTPUT", ["-m", "conntrack", "--ctstate", "NEW",
                                  "-j", self._c("SERVICES")]),
            # before the pod network's FORWARD DROP: a refused Service port answers at once
            ("filter", "FORWARD", ["-i", bridge, "-m", "conntrack", "--ctstate", "NEW",
                                   "-j", self._c("SERVICES")]),
            ("filter", "FORWARD", ["-o", bridge, "-j", self._c("FORWARD")]),
        ]

    def _c(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def start(self) -> "ServiceProxy":
        """Empty chains and the jumps into them, then a sync on every change."""
        self._restore(self._rules(()))
        # packets the bridge routes back into itself (pod → ClusterIP → pod) are forwarded
        _run("sysctl", "-qw", f"net.ipv4.conf.{self.bridge}.forwarding=1")
        for table, chain, spec in self._jumps:
            _run("iptables", "-w", "-t", table, "-I", chain, "1", *spec,
                 "-m", "comment", "--comment", self.bridge)
        self.services.add_listener(self._wake.set)
        self._thread.start()
        self._wake.set()
        return self

    def stop(self) -> None:
        """Remove the jumps and every chain."""
        self._closed.set()
        self._wake.set()
        self._thread.join(10)
        for table, chain, spec in self._jumps:
            _run("iptables", "-w", "-t", table, "-D", chain, *spec,
                 "-m", "comment", "--comment", self.bridge, check=False)
        remove_chains(self.prefix)

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            if self._closed.is_set():
                return
            self._wake.clear()
            try:
                self._restore(self._rules(self.services.snapshot().ports))
            except (PodNetworkError, OSError, subprocess.SubprocessError) as e:
                print(f"sandbox: service proxy: {e}", flush=True)
                self._closed.wait(1.0)
                self._wake.set()  # retry, as the real proxier's sync retries

    def _rules(self, ports) -> dict[str, list[list[str]]]:
        """Every chain's rules for `ports` (chain lines and rules per table)."""
        nat: list[list[str]] = []
        filt: list[list[str]] = []
        chains = {"nat": [self._c(n) for n in ("SERVICES", "POSTROUTING", "MARK-MASQ")],
                  "filter": [self._c("SERVICES"), self._c("FORWARD")]}
        masq = self._c("MARK-MASQ")
        nat += [["-A", self._c("POSTROUTING"), "-m", "mark", "!", "--mark",
                 f"{MASQ_MARK}/{MASQ_MARK}", "-j", "RETURN"],
                ["-A", self._c("POSTROUTING"), "-j", "MARK", "--xor-mark", MASQ_MARK],
                ["-A", self._c("POSTROUTING"), "-m", "comment", "--comment",
                 "kubernetes service traffic requiring SNAT", "-j", "MASQUERADE",
                 "--random-fully"],
                ["-A", masq, "-j", "MARK", "--or-mark", MASQ_MARK]]
        filt += [["-A", self._c("FORWARD"), "-m", "mark", "--mark", f"{MASQ_MARK}/{MASQ_MARK}",
                  "-j", "ACCEPT"],
                 ["-A", self._c("FORWARD"), "-i", self.bridge, "-o", self.bridge,
                  "-j", "ACCEPT"],
                 ["-A", self._c("FORWARD"), "-m", "conntrack", "--ctstate",
                  "RELATED,ESTABLISHED", "-j", "ACCEPT"]]
        for sp in ports:
            if sp.cluster_ip in ("", "None", SERVICE_IP):
                continue
            proto = sp.protocol.lower()
            match = ["-m", proto, "-p", proto, "-d", f"{sp.cluster_ip}/32",
                     "--dport", str(sp.port)]
            if not sp.endpoints:
                filt.append(["-A", self._c("SERVICES"), "-m", "comment", "--comment",
                             f"{sp.label} has no endpoints", *match, "-j", "REJECT"])
                continue
            svc_chain = self._c(f"SVC-{_hash(sp.label + proto, self._hash_size)}")
            chains["nat"].append(svc_chain)
            nat.append(["-A", self._c("SERVICES"), "-m", "comment", "--comment",
                        f"{sp.label} cluster IP", *match, "-j", svc_chain])
            nat.append(["-A", svc_chain, "-m", "comment", "--comment",
                        f"{sp.label} cluster IP", *match, "!", "-s", self.pod_cidr,
                        "-j", masq])
            n = len(sp.endpoints)
            for i, (ip, port) in enumerate(sp.endpoints):
                endpoint = f"{ip}:{port}"
                sep = self._c(f"SEP-{_hash(sp.label + proto + endpoint, self._hash_size)}")
                chains["nat"].append(sep)
                chance = (["-m", "statistic", "--mode", "random", "--probability",
                           f"{1.0 / (n - i):0.10f}"] if i < n - 1 else [])
                nat.append(["-A", svc_chain, "-m", "comment", "--comment",
                            f"{sp.label} -> {endpoint}", *chance, "-j", sep])
                nat.append(["-A", sep, "-m", "comment", "--comment", sp.label,
                            "-s", f"{ip}/32", "-j", masq])
                nat.append(["-A", sep, "-m", "comment", "--comment", sp.label,
                            "-m", proto, "-p", proto, "-j", "DNAT",
                            "--to-destination", endpoint])
        return {"chains": chains, "nat": nat, "filter": filt}

    def _restore(self, rules: dict) -> None:
        lines = []
        for table in ("nat", "filter"):
            wanted = list(dict.fromkeys(rules["chains"][table]))
            stale = sorted(self._chains[table] - set(wanted))
            lines.append(f"*{table}")
            lines += [f":{c} - [0:0]" for c in wanted + stale]
            lines += [" ".join(_quote(a) for a in rule) for rule in rules[table]]
            lines += [f"-X {c}" for c in stale]
            lines.append("COMMIT")
        out = subprocess.run(["iptables-restore", "-w", "--noflush"],
                             input="\n".join(lines) + "\n", capture_output=True, text=True,
                             timeout=30)
        if out.returncode != 0:
            raise PodNetworkError(f"iptables-restore: {out.stderr.strip()}")
        for table in ("nat", "filter"):
            self._chains[table] = set(rules["chains"][table])


def _quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) else arg

