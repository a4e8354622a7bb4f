"""Cluster DNS for the pods of the netns pod network, and each pod's /etc/resolv.conf.

`ClusterDNS` answers on the bridge's gateway address, port 53, over UDP and TCP (RFC 1035
§4.2: a TCP message is preceded by its two-byte length), what CoreDNS's kubernetes plugin
answers for Services (plugin/kubernetes/kubernetes.go `Records`, `findServices`): an A record
for `<service>.<namespace>.svc.cluster.local` holding the ClusterIP, or for a headless
Service (clusterIP "None") one A record per ready endpoint address; the TTL 5 (the plugin's
default `ttl`). A name that exists but has no record of the type asked (AAAA, ...) is
NOERROR with no answer; any other name NXDOMAIN: pods cannot reach beyond the node, so there
is no upstream to forward to.

The short forms (`<svc>.<ns>.svc`, `<svc>.<ns>`, `<svc>`) are the resolver's work: each pod's
resolv.conf carries the kubelet's ClusterFirst search path and `ndots:5`
(pkg/kubelet/network/dns/dns.go `generateSearchesForDNSClusterFirst`: `<ns>.svc.<domain>`,
`svc.<domain>`, `<domain>`; `defaultDNSOptions`), so `istiod.istio-system.svc` is tried as
`istiod.istio-system.svc.<ns>.svc.cluster.local` ... until
`istiod.istio-system.svc.cluster.local` answers.

A pod's processes see that file where `ip netns exec` would put it: it is written to
/etc/netns/<netns name>/resolv.conf and, in the child before exec, bind-mounted over
/etc/resolv.conf in a mount namespace of the process's own (iproute2 ip/ipnetns.c
`netns_switch` → `bind_etc`: unshare(CLONE_NEWNS), mount "/" MS_SLAVE|MS_REC, then bind
/etc/netns/<name>/* over /etc/*)."""

from __future__ import annotations

import ctypes
import os
import pathlib
import shutil
import socket
import struct
import threading

from .services import ClusterServices

CLUSTER_DOMAIN = "cluster.local"
DNS_PORT = 53
TTL = 5
ETC_NETNS = pathlib.Path("/etc/netns")
CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_SLAVE = 4096, 16384, 1 << 19
TYPE_A, TYPE_ANY, CLASS_IN = 1, 255, 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP = 0, 1, 2, 3, 4
_libc = ctypes.CDLL(None, use_errno=True)


# -- each pod's resolv.conf
def resolv_conf_text(namespace: str, nameserver: str) -> str:
    search = [f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
    return f"search {' '.join(search)}\nnameserver {nameserver}\noptions ndots:5\n"


def write_resolv_conf(netns: str, pod: dict, nameserver: str) -> str | None:
    """/etc/netns/<netns>/resolv.conf for `pod` (None when its dnsPolicy is `Default`: it
    keeps the node's, as the kubelet gives it the host's resolv.conf)."""
    if (pod.get("spec") or {}).get("dnsPolicy") == "Default":
        return None
    directory = ETC_NETNS / netns
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "resolv.conf"
    path.write_text(resolv_conf_text(pod["metadata"].get("namespace", "default"), nameserver))
    return str(path)


def remove_resolv_confs(prefix: str) -> list[str]:
    """Remove /etc/netns/<prefix>*; what was removed."""
    removed = []
    if ETC_NETNS.is_dir():
        for entry in ETC_NETNS.iterdir():
            if entry.name.startswith(prefix):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(f"dir {entry}")
    return removed


def mount_resolv_conf(path: str) -> None:
    """In a child before exec: a mount namespace of its own where `path` is /etc/resolv.conf."""
    def check(result: int, what: str) -> None:
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")
    check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    check(_libc.mount(b"none", b"/", None, MS_SLAVE | MS_REC, None), "mount / slave")
    check(_libc.mount(path.encode(), b"/etc/resolv.conf", None, MS_BIND, None),
          "bind resolv.conf")


# -- the DNS messages
def answer(query: bytes, services: ClusterServices) -> bytes | None:
    """The response to one DNS query message (None: not a query worth an answer); a
    SERVFAIL if the Services could not be read."""
    try:
        return _answer(query, services)
    except (KeyError, TypeError, ValueError) as e:  # an object of an unexpected shape
        print(f"sandbox: cluster DNS: {e!r}", flush=True)
        return struct.pack("!6H", query[0] << 8 | query[1], 0x8000 | SERVFAIL, 0, 0, 0, 0)


def _answer(query: bytes, services: ClusterServices) -> bytes | None:
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!3H", query[:6])
    if flags & 0x8000:
        return None  # a response, not a query
    opcode = (flags >> 11) & 0xF
    reply_flags = 0x8000 | (opcode << 11) | 0x0400 | (flags & 0x0100)  # QR, AA, RD copied
    if opcode != 0 or qdcount != 1:
        return struct.pack("!6H", ident, reply_flags | (NOTIMP if opcode else FORMERR),
                           0, 0, 0, 0)
    try:
        labels, offset = [], 12
        while query[offset]:
            size = query[offset]
            if size & 0xC0:
                raise ValueError("compressed name in a question")
            labels.append(query[offset + 1:offset + 1 + size].decode("ascii"))
            offset += 1 + size
        qtype, qclass = struct.unpack("!2H", query[offset + 1:offset + 5])
    except (IndexError, ValueError, struct.error, UnicodeDecodeError):
        return struct.pack("!6H", ident, reply_flags | FORMERR, 0, 0, 0, 0)
    question = query[12:offset + 5]
    addresses = lookup(".".join(labels).lower(), services)
    if addresses is None:
        return struct.pack("!6H", ident, reply_flags | NXDOMAIN, 1, 0, 0, 0) + question
    records = [struct.pack("!2HIH", TYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(ip)
               for ip in addresses if qtype in (TYPE_A, TYPE_ANY) and qclass == CLASS_IN]
    return (struct.pack("!6H", ident, reply_flags | NOERROR, 1, len(records), 0, 0) + question
            + b"".join(b"\xc0\x0c" + r for r in records))  # each names the question's name


def lookup(name: str, services: ClusterServices) -> tuple[str, ...] | None:
    """The A record addresses of `name` (None: no such name)."""
    suffix = f".svc.{CLUSTER_DOMAIN}"
    if not name.endswith(suffix):
        return None
    parts = name[:-len(suffix)].split(".")
    if len(parts) != 2:
        return None
    found = services.snapshot().services.get((parts[1], parts[0]))
    if found is None:
        return None
    cluster_ip, endpoints = found
    return endpoints if cluster_ip == "None" else (cluster_ip,)


class ClusterDNS:
    def __init__(self, services: ClusterServices, address: str, port: int = DNS_PORT):
        self.services = services
        self.address = (address, port)
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "ClusterDNS":
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(self.address)
        self._tcp = socket.create_server(self.address)
        for target, name in ((self._serve_udp, "dns-udp"), (self._serve_tcp, "dns-tcp")):
            t = threading.Thread(target=target, daemon=True, name=name)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._closed.set()
        for s in (self._udp, self._tcp):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        for t in self._threads:
            t.join(5)

    def _serve_udp(self) -> None:
        while not self._closed.is_set():
            try:
                query, peer = self._udp.recvfrom(4096)
            except OSError:
                return
            reply = answer(query, self.services)
            if reply is not None:
                try:
                    self._udp.sendto(reply, peer)
                except OSError:
                    pass

    def _serve_tcp(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True,
                             name="dns-tcp-conn").start()

    def _serve_connection(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                while True:
                    head = _read(conn, 2)
                    if head is None:
                        return
                    query = _read(conn, struct.unpack("!H", head)[0])
                    reply = answer(query or b"", self.services)
                    if reply is None:
                        return
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return


def _read(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
