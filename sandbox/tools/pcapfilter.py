"""Checking a capture filter the way tcpdump does: libpcap compiles it (`pcap_compile`).

The sandbox's tcpdump scopes a capture to the pod with `host <POD_IP> and (<user filter>)`.
That only narrows the pod's traffic when the user's filter is a whole expression by itself:
`0=1) or (host OTHER` would otherwise close the parenthesis and capture another pod. So the
user's filter is compiled on its own first, on a dead handle of the pod interface's link
type (Ethernet), and refused with libpcap's own message, as tcpdump on the pod's eth0 would
refuse it (tcpdump.c: `pcap_compile` fails → `error("%s", pcap_geterr(pd))`, exit 1).
"""

from __future__ import annotations

import ctypes
import ctypes.util

DLT_EN10MB = 1  # a pod's eth0 (a veth) and the host's lo are both Ethernet to libpcap
SNAPLEN = 262144  # tcpdump's default
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF


class FilterError(Exception):
    """libpcap could not compile the filter; the message is libpcap's."""


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


def _libpcap() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("pcap") or "libpcap.so.0.8")
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


def check(expression: str) -> None:
    """FilterError unless `expression` compiles as a filter on its own."""
    lib = _libpcap()
    handle = lib.pcap_open_dead(DLT_EN10MB, SNAPLEN)
    if not handle:
        raise FilterError("cannot open a pcap handle to compile the filter")
    try:
        program = _BpfProgram()
        if lib.pcap_compile(handle, ctypes.byref(program), expression.encode(), 1,
                            PCAP_NETMASK_UNKNOWN) != 0:
            raise FilterError((lib.pcap_geterr(handle) or b"syntax error").decode(errors="replace"))
        lib.pcap_freecode(ctypes.byref(program))
    finally:
        lib.pcap_close(handle)


def read_filter_file(path: str) -> str:
    """A `-F` file's filter as tcpdump reads it (`read_infile`: `#` comments to the end of
    a line are dropped). OSError if it cannot be read."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return " ".join(line.partition("#")[0].strip() for line in f).strip()
