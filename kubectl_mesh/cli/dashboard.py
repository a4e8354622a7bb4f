"""`kubectl mesh dashboard TARGET [--port N] [--address IP] [--browser=false]`."""

from __future__ import annotations

import argparse

from kubectl_mesh.cli import common

EPILOG = """\
examples:
  kubectl mesh dashboard deploy/catalog -n istioinaction
  kubectl mesh dashboard catalog-7d9f.istioinaction --port 15000 --browser=false
  kubectl mesh dashboard istiod                # istiod's ControlZ (port 9876)
  kubectl mesh dashboard istiod-debug          # istiod's /debug page (port 15014)

Prints the URL on stdout, opens the browser, and forwards every connection to the pod's
port until Ctrl-C (or SIGTERM/SIGHUP), then closes the local port (exit 130/143/129).
The local port listens on 127.0.0.1 unless --address says otherwise: the admin page has no
authentication, and can stop the proxy.
TARGET `istiod` (or `controlz`) and `istiod-debug` mean istiod's pages; a pod of that name
is pod/NAME.
"""


def _local_port(text: str) -> int:
    return common.port_number(text, zero_is_free=True)


def build_parser(prog: str) -> argparse.ArgumentParser:
    from kubectl_mesh.sync.istiod import DEFAULT_ISTIO_NAMESPACE

    p = common.command_parser(prog, "Open a proxy's Envoy admin page (or istiod's ControlZ "
                                    "or debug page) in the browser.", epilog=EPILOG)
    p.add_argument("target", nargs="?",
                   help="pod or workload: NAME[.NS], pod/, deploy/, sts/, ds/, rs/, "
                        "svc/NAME[.NS]; or istiod, controlz, istiod-debug")
    p.add_argument("-l", "--selector", help="label selector instead of a target")
    p.add_argument("-p", "--port", type=_local_port, default=0,
                   help="local port to listen on (default: a free one)")
    p.add_argument("--address", default="127.0.0.1",
                   help="local address to listen on: an IP address or localhost "
                        "(default: 127.0.0.1)")
    p.add_argument("--browser", type=common.boolean, nargs="?", const=True, default=True,
                   metavar="true|false",
                   help="open the browser (default: true; --browser=false only prints the URL)")
    p.add_argument("-i", "--istio-namespace", "--istioNamespace", dest="istio_namespace",
                   default=DEFAULT_ISTIO_NAMESPACE, metavar="NS", type=common.namespace_name,
                   help=f"where istiod runs (default: {DEFAULT_ISTIO_NAMESPACE})")
    p.add_argument("--revision", metavar="REV",
                   help="istiod of this revision (label istio.io/rev=REV)")
    p.add_argument("--ctrlz-port", "--ctrlz_port", dest="ctrlz_port", type=_local_port,
                   default=9876, metavar="PORT", help="istiod's ControlZ port (default: 9876)")
    common.add_cluster_flags(p)
    return p


def _main(argv, *, prog, stdout, stderr) -> int:
    from kubectl_mesh.dashboard.command import run
    from kubectl_mesh.dashboard.options import ENVOY, PAGE_WORDS, DashboardOptions
    from kubectl_mesh.errors import UsageError
    from kubectl_mesh.kube.forwardport import listen_address

    args = build_parser(prog).parse_args(argv)
    page = PAGE_WORDS.get(args.target or "", ENVOY)
    if page == ENVOY and not (args.target or args.selector):
        raise UsageError("a target is required",
                         hint=f"e.g. {prog} deploy/catalog -n istioinaction, or {prog} istiod")
    if page != ENVOY and args.selector:
        raise UsageError(f"{args.target} means istiod's page: -l selects proxies only",
                         hint="use --revision to choose an istiod")
    if page == ENVOY and args.revision:
        raise UsageError("--revision chooses an istiod: it goes with istiod, controlz or "
                         "istiod-debug")
    if args.ctrlz_port == 0:
        raise UsageError("--ctrlz-port must be a port (1-65535)")
    opts = DashboardOptions(
        cluster=common.cluster_options(args), page=page,
        target=args.target if page == ENVOY else None, selector=args.selector,
        address=listen_address(args.address), port=args.port, browser=args.browser,
        istio_namespace=args.istio_namespace, revision=args.revision,
        controlz_port=args.ctrlz_port)
    return run(opts, stdout, stderr)


def main(argv=None, stdout=None, stderr=None) -> int:
    return common.run(_main, argv, prog=common.prog_name("dashboard"), stdout=stdout,
                      stderr=stderr)
