"""The sandbox's `tcpdump`: fail like the container's image would, else capture the pod.

A pod's interfaces (`eth0`, `lo`, `any`) all map to the host loopback, restricted to the pod's
IP: `/usr/bin/tcpdump -i lo ... host <POD_IP> and (<user filter>)`. Simulated: `-i lo` shows
the pod's traffic on its address, not only app<->sidecar traffic on 127.0.0.1 (every sandbox
pod shares the host's loopback). The user's filter stays one argv element; no shell runs.

The user's filter may only narrow the pod's traffic, as on a pod's own interface: before
tcpdump runs, it must compile on its own (`pcapfilter.check`: an unbalanced
`0=1) or (host OTHER` is tcpdump's "can't parse filter expression" error, never a way out of
the parentheses), and a filter read with `-F FILE` (which makes tcpdump ignore the command
line's expression, the scoping with it) is read here and scoped like one given inline.

A pod in a network namespace of its own (the real backend's `--pod-network netns`: the
runtime sets `SANDBOX_POD_NETNS`) has real `eth0` and `lo`: the host tcpdump runs there on the
interface asked for, with the user's filter as it is.

Unlike a pod's eth0 (a veth: each packet once), the host loopback hands every packet to the
capture socket twice (sent, then received) and libpcap drops the sent copy only in user space,
after it took room in the kernel ring (`-B`): a sandbox capture needs about twice the ring of
a real one. (The kernel filter `inbound` would avoid that but misses ~3 % of loopback packets.)
"""

from __future__ import annotations

import dataclasses
import getopt
import os
import sys

from sandbox.tools import facts_from_env, may_capture
from sandbox.tools.pcapfilter import FilterError, check, read_filter_file

HOST_TCPDUMP = "/usr/bin/tcpdump"
POD_NETNS_ENV = "SANDBOX_POD_NETNS"  # set in a pod that has a network namespace of its own
POD_INTERFACES = ("eth0", "lo", "any")
# tcpdump 4.99's getopt string: the options that take a value.
OPTSTRING = "aAbB:c:C:dDeE:fF:G:hHi:IjJ:KlLm:M:nNOpqQ:r:s:StT:uUvV:w:W:xXy:Yz:Z:#"
LONG = ["interface=", "count=", "snapshot-length=", "immediate-mode", "version", "help",
        "time-stamp-precision=", "print", "direction=", "packet-buffered", "list-interfaces"]


@dataclasses.dataclass(frozen=True)
class Invocation:
    """A tcpdump command line: the interface, the other options, and where the filter is."""
    interface: str
    options: tuple[str, ...]
    filter_file: str | None
    expression: tuple[str, ...]

    @classmethod
    def parse(cls, argv: list[str]) -> "Invocation":
        """getopt.GetoptError on bad options."""
        opts, rest = getopt.gnu_getopt(argv, OPTSTRING, LONG)
        iface = "eth0"  # tcpdump's default: the first up, non-loopback interface
        filter_file = None
        out: list[str] = []
        for opt, value in opts:
            if opt in ("-i", "--interface"):
                iface = value
            elif opt == "-F":
                filter_file = value
            elif opt.startswith("--"):
                out.append(f"{opt}={value}" if _takes_value(opt) else opt)
            else:
                out += [opt, value] if _takes_value(opt) else [opt]
        return cls(iface, tuple(out), filter_file, tuple(rest))

    def user_filter(self) -> str:
        """The filter tcpdump would use (tcpdump.c: with -F, the file's replaces the command
        line's). OSError if the file cannot be read."""
        if self.filter_file is not None:
            return read_filter_file(self.filter_file)
        return " ".join(self.expression).strip()

    def host_argv(self, pod_ip: str, user_filter: str, *, own_netns: bool = False) -> list[str]:
        """The host tcpdump's argv, capturing on loopback what the pod's address sees (in a
        network namespace of the pod's own: on the pod's interface, the filter unchanged)."""
        if own_netns:
            return [HOST_TCPDUMP, "-i", self.interface, *self.options,
                    *([user_filter] if user_filter else [])]
        expression = f"host {pod_ip}" + (f" and ({user_filter})" if user_filter else "")
        return [HOST_TCPDUMP, "-i", "lo", *self.options, expression]


def translate(argv: list[str], pod_ip: str) -> tuple[list[str], str]:
    """(host tcpdump argv, the pod interface asked for), the filter not yet checked.
    getopt.GetoptError on bad options, OSError on an unreadable -F file."""
    invocation = Invocation.parse(argv)
    return invocation.host_argv(pod_ip, invocation.user_filter()), invocation.interface


def _takes_value(opt: str) -> bool:
    if opt.startswith("--"):
        return any(o.endswith("=") and o[:-1] == opt[2:] for o in LONG)
    i = OPTSTRING.find(opt[1])
    return i >= 0 and OPTSTRING[i + 1:i + 2] == ":"


def main(argv: list[str]) -> int:
    facts = facts_from_env()
    if facts and "tcpdump" not in facts.get("tools", []):  # run by a shell in the container
        sys.stderr.write("sh: 1: tcpdump: not found\n")
        return 127
    pod_ip = os.environ.get("POD_IP", "")
    try:
        invocation = Invocation.parse(argv)
    except getopt.GetoptError as e:
        sys.stderr.write(f"tcpdump: {e}\n")
        return 1
    iface = invocation.interface
    if iface not in POD_INTERFACES:
        sys.stderr.write(f"tcpdump: {iface}: No such device exists\n"
                         "(SIOCGIFHWADDR: No such device)\n")
        return 1
    if not may_capture(facts):
        sys.stderr.write(f"tcpdump: {iface}: You don't have permission to perform this "
                         "capture on that device\n(socket: Operation not permitted)\n")
        return 1
    if not pod_ip:
        sys.stderr.write("tcpdump: sandbox shim: POD_IP is not set\n")
        return 1
    try:  # after opening the device, as tcpdump.c reads -F and compiles the filter
        user_filter = invocation.user_filter()
        if user_filter:
            check(user_filter)
    except OSError as e:  # tcpdump.c read_infile
        sys.stderr.write(f"tcpdump: can't open {e.filename}: {e.strerror}\n")
        return 1
    except FilterError as e:  # tcpdump.c: error("%s", pcap_geterr(pd))
        sys.stderr.write(f"tcpdump: {e}\n")
        return 1
    host_argv = invocation.host_argv(pod_ip, user_filter,
                                     own_netns=bool(os.environ.get(POD_NETNS_ENV)))
    sys.stderr.flush()
    os.execv(HOST_TCPDUMP, host_argv)  # the process becomes tcpdump: signals reach it
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
