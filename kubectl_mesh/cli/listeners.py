"""`kubectl mesh listeners TARGET`: the proxy's listeners and filter chains."""

from __future__ import annotations

from kubectl_mesh.cli import proxyconfig


def _type(text: str) -> str:
    import argparse
    value = text.upper()
    if value not in ("HTTP", "TCP", "HTTP+TCP"):
        raise argparse.ArgumentTypeError(f"invalid type {text!r}: choose HTTP, TCP or HTTP+TCP")
    return value


def _truth(text: str) -> bool:
    import argparse
    value = {"true": True, "1": True, "t": True, "false": False, "0": False, "f": False}.get(
        text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"invalid boolean {text!r}: true or false")
    return value


def _flags(p) -> None:
    p.add_argument("--address", default="", help="only listeners with this address")
    p.add_argument("--port", type=int, default=0, help="only listeners on this port")
    p.add_argument("--type", type=_type, default=None, help="only HTTP, TCP or HTTP+TCP listeners")
    p.add_argument("--summary", action="store_true",
                   help="one row per listener (ADDRESSES PORT TYPE) instead of per filter chain")
    p.add_argument("--verbose", type=_truth, nargs="?", const=True, default=True,
                   metavar="BOOL", help="istioctl's spelling: --verbose=false is --summary")


def build_parser(prog: str):
    return proxyconfig.build_parser(prog, "Show a proxy's listeners and filter chains.", _flags)


def view_of(args):
    from kubectl_mesh.configdump import ListenerFilter
    from kubectl_mesh.proxyconfig.views import ListenersView
    return ListenersView(ListenerFilter(address=args.address, port=args.port,
                                        type=args.type or ""),
                         verbose=args.verbose and not args.summary)


main = proxyconfig.main_for("listeners", build_parser, view_of)
