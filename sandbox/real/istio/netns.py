"""Run a command in a network namespace of its own, as a pod's containers run: 127.0.0.1,
0.0.0.0 binds and every port are its own, so an injected sidecar's Envoy (listeners on
0.0.0.0:15001/15006/15021/15090, admin on 127.0.0.1:15000) and pilot-agent (:15020) collide
with nothing on the host. No veth, no routable address: TCP is relayed across the namespace
boundary on loopback only.

`python -m sandbox.real.istio.netns [--out NS_ADDR=HOST_ADDR]... [--in HOST_ADDR=NS_ADDR]...
-- command...` (addresses `ip:port`):
- `--out`: a listener inside the namespace on NS_ADDR whose connections are relayed to
  HOST_ADDR in the host's namespace (the pod reaching istiod);
- `--in`: a listener in the host's namespace on HOST_ADDR relayed to NS_ADDR inside (a
  client reaching the pod's Envoy admin, as a port-forward would).

The process unshares its network namespace (unshare(2), CLONE_NEWNET; needs root), brings
`lo` up, and relays with one thread per direction of each connection; a thread that dials
the host's side first joins the host's namespace (setns(2) acts on the calling thread only).
It forwards SIGTERM/SIGINT to the command and exits with its status.

The command runs as PID 1 of a PID namespace of its own (`unshare --pid --kill-child`, which
dies with this process, PR_SET_PDEATHSIG, and takes its child with it): when PID 1 dies the
kernel kills everything left in its namespace (pid_namespaces(7)), so the Envoy that
pilot-agent starts – without a death signal of its own (pkg/envoy/proxy.go `Run`) – cannot
outlive a killed test run. (This process cannot unshare CLONE_NEWPID itself: it could start
no more relay threads afterwards.)"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def pair(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    listen, _, target = text.partition("=")
    return hostport(listen), hostport(target)


def listener(address: tuple[str, int]) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(address)
    s.listen(64)
    return s


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _serve(lsock: socket.socket, target: tuple[str, int], host_ns: int | None) -> None:
    """Accept on `lsock`; relay each connection to `target`, dialled in the host's namespace
    when `host_ns` (an fd of /proc/self/ns/net taken before unsharing) is given."""
    def handle(conn: socket.socket) -> None:
        if host_ns is not None:
            _check(_libc.setns(host_ns, CLONE_NEWNET), "setns")
        try:
            upstream = socket.create_connection(target, timeout=10)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
        back.start()
        _pump(conn, upstream)
        back.join()
        conn.close()
        upstream.close()

    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def loopback_up() -> None:
    """`ip link set lo up`, by ioctl (netdevice(7) SIOCGIFFLAGS/SIOCSIFFLAGS): no need for
    iproute2."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def _die_with_parent() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netns")
    parser.add_argument("--out", action="append", default=[], type=pair)
    parser.add_argument("--in", dest="inward", action="append", default=[], type=pair)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command is required after --")
    host_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
    inward = [(listener(listen), target) for listen, target in args.inward]  # host side
    _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    loopback_up()
    for lsock, target in inward:  # dialled inside: these threads start in the new namespace
        threading.Thread(target=_serve, args=(lsock, target, None), daemon=True).start()
    for listen, target in args.out:
        threading.Thread(target=_serve, args=(listener(listen), target, host_ns),
                         daemon=True).start()
    child = subprocess.Popen(["unshare", "--pid", "--kill-child=SIGKILL", "--", *command],
                             preexec_fn=_die_with_parent)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: child.send_signal(s))
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
