"""`kubectl mesh sniff TARGET`: capture a pod's (or every ready pod of a workload's) packets
with tcpdump into Wireshark, a pcap/pcapng file, a directory or stdout."""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING

from kubectl_mesh.cli import common

if TYPE_CHECKING:  # the CLI imports the capture package only when it runs
    from kubectl_mesh.capture.options import SniffOptions

EPILOG = """\
modes:
  auto       exec into a container that has tcpdump and may capture, else an ephemeral
             container; says why when neither works
  exec       tcpdump in a container of the pod (-c)
  ephemeral  an ephemeral debug container (--image, NET_RAW) targeting -c, else
             istio-proxy, else the first container; Kubernetes cannot remove it afterwards
             (its process is ended)
  node       a privileged hostPID debug pod on the pod's node (needs --privileged)
Any Running pod can be captured, with or without an istio-proxy sidecar.

examples:
  kubectl mesh sniff deploy/catalog -n istioinaction -i lo -f 'tcp port 3000'
      app <-> sidecar plaintext (-i lo) of every ready catalog pod, live in Wireshark
  kubectl mesh sniff catalog-7d9f.istioinaction -o catalog.pcap --duration 10s
  kubectl mesh sniff deploy/catalog -o - | tshark -r -
  kubectl mesh sniff deploy/redis -n cache -c redis -o redis.pcap --duration 30s
      a pod without a sidecar: tcpdump in its redis container, else an ephemeral one
"""

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?i?b?)?", re.I)
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "ki": 1024, "kib": 1024, "m": 1e6, "mb": 1e6,
          "mi": 2**20, "mib": 2**20, "g": 1e9, "gb": 1e9, "gi": 2**30, "gib": 2**30}


def parse_size(text: str) -> int:
    """Bytes in `500000`, `10MB`, `10Mi`, `1G`..."""
    match = _SIZE.fullmatch(text.strip())
    unit = (match.group(2) or "").lower() if match else None
    if not match or unit not in _UNITS or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (e.g. 500k, 10MB, 1Gi)")
    return int(float(match.group(1)) * _UNITS[unit])


# What tcpdump itself accepts (tcpdump.c: `-c` a positive int, `-s` up to MAXIMUM_SNAPLEN):
# refused here, before a debug container is created for a tcpdump that would reject it.
MAX_COUNT = 2**31 - 1
MAX_SNAPLEN = 262144


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"invalid count {text!r} (a whole number from 1 to "
                                         f"{MAX_COUNT})")
    return int(text)


def _snaplen(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_SNAPLEN:
        raise argparse.ArgumentTypeError(f"invalid snaplen {text!r} (bytes, from 1 to "
                                         f"{MAX_SNAPLEN})")
    return int(text)


def build_parser(prog: str) -> argparse.ArgumentParser:
    from kubectl_mesh.capture.options import DEFAULT_IMAGE, IMAGE_ENV, MODES

    p = common.command_parser(prog, "Capture a pod's traffic with tcpdump into Wireshark or "
                                    "a pcap file.", epilog=EPILOG)
    p.add_argument("target", nargs="?",
                   help="pod or workload: NAME[.NS], pod/, deploy/, sts/, ds/, rs/, svc/NAME[.NS]"
                        " (a workload: all its ready pods, one pcapng interface per pod)")
    p.add_argument("-l", "--selector", help="label selector instead of a target")
    p.add_argument("-c", "--container",
                   help="container to run tcpdump in (exec) or to target (ephemeral, node); "
                        "default: exec tries the app containers, then istio-proxy; ephemeral "
                        "and node target istio-proxy, else the first container")
    p.add_argument("-i", "--interface", default="any",
                   help="interface in the pod (default: any, as ksniff: every interface). "
                        "In a sidecar pod, any holds each request twice: as mTLS on eth0 and "
                        "as the app's plaintext leg on lo (Envoy <-> app); -i eth0 for the "
                        "wire only, -i lo for the plaintext leg only")
    p.add_argument("-f", "--filter", default="",
                   help="tcpdump filter expression, passed verbatim as one argument; "
                        "compiled here first (libpcap), so a bad one fails at once")
    p.add_argument("-o", "--output", metavar="FILE|-|DIR/",
                   help="write a pcap (pcapng for several pods) to FILE, '-' = stdout, "
                        "'DIR/' = a pcap per pod (default: live into Wireshark)")
    p.add_argument("--count", type=_count, metavar="N", help="stop after N packets")
    p.add_argument("--duration", type=common.parse_duration, metavar="D",
                   help="stop after D (e.g. 30s, 5m)")
    p.add_argument("--max-size", type=parse_size, metavar="SIZE",
                   help="stop before writing more than SIZE (e.g. 100MB)")
    p.add_argument("--mode", choices=MODES, default="auto",
                   help="where tcpdump runs (default: auto)")
    p.add_argument("--image", default=os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE,
                   help="debug image for ephemeral/node, with tcpdump, sh, timeout, head and cat "
                        f"(busybox has the last four; default: ${IMAGE_ENV}, else "
                        f"{DEFAULT_IMAGE})")
    p.add_argument("-p", "--privileged", action="store_true",
                   help="allow --mode node (a privileged debug pod on the node)")
    p.add_argument("--buffer-size", type=parse_size, metavar="SIZE", default=None,
                   help="tcpdump's kernel buffer per pod (-B; default: 256Mi shared by the "
                        "pods, at least 32Mi each). Bigger absorbs longer bursts the exec "
                        "stream cannot drain at once, at the cost of that much kernel memory "
                        "on the node")
    p.add_argument("-s", "--snaplen", type=_snaplen, metavar="BYTES",
                   help="keep the first BYTES of each packet (default: whole packets); e.g. 128 "
                        "for headers only: a small fraction of the bytes of bulk traffic, "
                        "so bursts are not dropped (no payload)")
    p.add_argument("--summary", action="store_true",
                   help="print tshark's one-line decode of each packet on stdout")
    common.add_cluster_flags(p)
    common.add_concurrency_flag(p)
    return p


def options_from_args(args) -> "SniffOptions":
    from kubectl_mesh.capture.options import SniffOptions
    from kubectl_mesh.errors import UsageError

    if args.mode == "node" and not args.privileged:
        raise UsageError("--mode node runs a privileged debug pod on the node: add --privileged "
                         "to allow it")
    if not (args.target or args.selector):
        raise UsageError("a target is required", hint="e.g. deploy/catalog -n istioinaction")
    if args.summary and args.output == "-":
        raise UsageError("--summary writes text to stdout; it cannot go with -o -")
    return SniffOptions(target=args.target, selector=args.selector, container=args.container,
                        interface=args.interface, filter=args.filter, output=args.output,
                        count=args.count, duration=args.duration or None,
                        max_size=args.max_size, mode=args.mode, image=args.image,
                        privileged=args.privileged, summary=args.summary,
                        concurrency=args.concurrency, snaplen=args.snaplen,
                        buffer_bytes=args.buffer_size,
                        attach_window=_attach_window(args.request_timeout))


def _attach_window(request_timeout: float) -> float:
    """How long a debug container waits for our attach: two requests (0 = no timeout: 60s)."""
    return max(5.0, 2 * request_timeout) if request_timeout else 60.0


def _main(argv, *, prog, stdout, stderr) -> int:
    args = build_parser(prog).parse_args(argv)
    opts = options_from_args(args)
    from kubectl_mesh.capture.command import sniff
    return sniff(opts, common.cluster_options(args), stdout=stdout, stderr=stderr)


def main(argv=None, stdout=None, stderr=None) -> int:
    return common.run(_main, argv, prog=common.prog_name("sniff"), stdout=stdout, stderr=stderr)
