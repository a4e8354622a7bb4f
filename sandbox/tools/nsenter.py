"""The sandbox's `nsenter`, for node-mode captures: `nsenter -t PID -n [--] CMD ARGS...`.

Simulated: the sandbox node is the host and a pod's "network namespace" is its loopback
address, so entering the net namespace of container process PID means running CMD with that
pod's `POD_IP` (read from /proc/PID/environ) as root. Only a privileged, hostPID container may
do it, like on a real node. CMD runs without a shell.

A target in a network namespace other than ours (the real backend's `--pod-network netns`)
is entered for real: CMD runs in the namespace of /proc/PID/ns/net (setns(2), as util-linux
nsenter does), with `SANDBOX_POD_NETNS` set. The pod's IP comes from the target's `POD_IP`, or
`INSTANCE_IP` (what Istio's injector gives istio-proxy: the real pilot-agent's environment).
"""

from __future__ import annotations

import ctypes
import getopt
import os
import sys

from sandbox.tools import FACTS_ENV, facts_from_env
from sandbox.tools.tcpdump import POD_NETNS_ENV


def setns(fd: int) -> None:
    """Join the network namespace `fd` (setns(2), CLONE_NEWNET)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def pod_ip_of(pid: int) -> str | None:
    """The pod IP in a container process's environment: the sandbox's POD_IP, or the
    injected istio-proxy's INSTANCE_IP (fieldRef status.podIP)."""
    environ = _environ_of(pid)
    return environ.get("POD_IP") or environ.get("INSTANCE_IP")


def own_netns(pid: int) -> bool:
    """Whether process `pid` is in another network namespace than this one."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return False


def _environ_of(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            items = f.read().split(b"\0")
    except OSError:
        return {}
    return dict(item.decode(errors="replace").split("=", 1) for item in items if b"=" in item)


def main(argv: list[str]) -> int:
    try:
        opts, rest = getopt.getopt(argv, "t:nmpuiUCa", ["target=", "net", "all"])
    except getopt.GetoptError as e:
        sys.stderr.write(f"nsenter: {e}\n")
        return 1
    target = next((v for o, v in opts if o in ("-t", "--target")), None)
    if target is None or not rest:
        sys.stderr.write("nsenter: this sandbox shim supports `nsenter -t PID -n CMD...`\n")
        return 1
    facts = facts_from_env()
    if not (facts.get("privileged") and facts.get("hostPID")):
        sys.stderr.write(f"nsenter: cannot open /proc/{target}/ns/net: Permission denied\n")
        return 1
    ip = pod_ip_of(int(target)) if target.isdigit() else None
    if ip is None:
        sys.stderr.write(f"nsenter: cannot open /proc/{target}/ns/net: No such file or directory\n")
        return 1
    env = dict(os.environ, POD_IP=ip)
    netns = _environ_of(int(target)).get(POD_NETNS_ENV) or (
        f"pid:{target}" if own_netns(int(target)) else None)
    if netns:
        try:
            with open(f"/proc/{target}/ns/net", "rb") as ns:
                setns(ns.fileno())
        except OSError as e:
            sys.stderr.write(f"nsenter: reassociate to namespace 'ns/net' failed: {e.strerror}\n")
            return 1
        env[POD_NETNS_ENV] = netns
    # Inside the target's namespace the command still runs with our (privileged) credentials.
    env[FACTS_ENV] = os.environ.get(FACTS_ENV, "{}")
    try:
        os.execvpe(rest[0], rest, env)
    except OSError as e:
        sys.stderr.write(f"nsenter: failed to execute {rest[0]}: {e.strerror}\n")
        return 127
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
