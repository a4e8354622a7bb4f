"""The capture filter checked here, before anything is created in the cluster.

libpcap compiles the filter (`pcap_compile` on a dead handle of the interface's link type),
as tcpdump in the pod would (tcpdump.c: `pcap_compile` fails → `error("%s",
pcap_geterr(pd))`, exit 1). An error is final only when the pod's tcpdump would give the same
one: a syntax error, or a construct its link type cannot match (`ether host` on `-i any`,
Linux cooked capture). Names looked up while compiling (`host db`, `port myservice`) are the
pod's to resolve, not this machine's, and an interface other than eth0, lo and any may have
another link type, so those are left to tcpdump in the pod. Without libpcap here (ctypes
finds none), tcpdump in the pod is the only judge.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

from kubectl_mesh.errors import UsageError

# Link types of a pod's interfaces as libpcap opens them: a veth and the loopback are
# Ethernet; `any` is Linux cooked capture v1 (libpcap 1.10's default for the any device).
DLT_EN10MB, DLT_LINUX_SLL = 1, 113
LINK_TYPES = {"eth0": DLT_EN10MB, "lo": DLT_EN10MB, "any": DLT_LINUX_SLL}
SNAPLEN = 262144
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
COMPILE_WAIT = 2.0  # seconds
# libpcap's messages for names it looked up (gencode.c, nametoaddr.c): the pod's to decide.
LOOKUPS = ("unknown host", "unknown port", "unknown network", "unknown ether host",
           "unknown protocol", "unknown osi proto", "unknown ip proto", "unknown ether proto")


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


def _libpcap():
    name = ctypes.util.find_library("pcap")
    for candidate in ([name] if name else []) + ["libpcap.so.1", "libpcap.so.0.8"]:
        try:
            lib = ctypes.CDLL(candidate)
            break
        except OSError:
            continue
    else:
        return None
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


def compile_error(expression: str, interface: str) -> str | None:
    """libpcap's error for `expression` on `interface`'s link type; None when it compiles,
    or when this machine cannot judge it (no libpcap, a name lookup, an unknown link type).

    pcap_compile resolves host names as it parses (a cluster name may wait for this
    machine's DNS to give up): after COMPILE_WAIT seconds the pod's tcpdump judges instead.
    """
    if not expression.strip():
        return None
    found: list[str | None] = []
    worker = threading.Thread(target=lambda: found.append(_compile(expression, interface)),
                              daemon=True, name="bpf-compile")
    worker.start()
    worker.join(COMPILE_WAIT)
    return found[0] if found else None


def _compile(expression: str, interface: str) -> str | None:
    lib = _libpcap()
    if lib is None:
        return None
    link_type = LINK_TYPES.get(interface, DLT_EN10MB)
    handle = lib.pcap_open_dead(link_type, SNAPLEN)
    if not handle:
        return None
    try:
        program = _BpfProgram()
        if lib.pcap_compile(handle, ctypes.byref(program), expression.encode(), 1,
                            PCAP_NETMASK_UNKNOWN) == 0:
            lib.pcap_freecode(ctypes.byref(program))
            return None
        error = (lib.pcap_geterr(handle) or b"syntax error").decode(errors="replace")
    finally:
        lib.pcap_close(handle)
    if any(lookup in error for lookup in LOOKUPS):
        return None
    if interface not in LINK_TYPES and "syntax error" not in error:
        return None
    return error


def check(expression: str, interface: str) -> None:
    """UsageError when tcpdump in the pod would refuse the filter."""
    error = compile_error(expression, interface)
    if error is not None:
        raise UsageError(f"the capture filter {expression!r} is not valid on -i {interface}: "
                         f"{error}", hint="see `man pcap-filter`; e.g. -f 'tcp port 8080'")
