"""`kubectl mesh sync [TARGET]`: istiod's view of every proxy's xDS sync state (like
`istioctl proxy-status`), plus `--verify` (ask each Envoy), `--diff` (one proxy's config
against istiod's) and `--wait` (block until SYNCED, for CI)."""

from __future__ import annotations

from kubectl_mesh.cli import common

EPILOG = """\
selection (like istioctl proxy-status):
  no TARGET, no -n   every proxy the istiods know, in all namespaces
  -n NS              the proxies in namespace NS;  -A: all namespaces
  TARGET / -l        that workload's proxies (resolved in -n or the context's namespace)

statuses: SYNCED, NOT SENT, STALE (sent, not ACKed), ERROR (NACKed), IGNORED (never
subscribed; a column nobody subscribed to is left out), each with the age of the last push.

examples:
  kubectl mesh sync
  kubectl mesh sync -n istioinaction --verify
  kubectl apply -f vs.yaml && kubectl mesh sync -n istioinaction --wait --timeout 2m
  kubectl mesh sync deploy/catalog -n istioinaction --diff

reaching istiod: XDS first, like istioctl proxy-status (port 15012, TLS checked against the
istio-ca-root-cert ConfigMap, a token for serviceaccount default of the istio namespace,
audience istio-ca; 15010 plaintext when no token can be had), then HTTP /debug/syncz on
15014 (said once on stderr). --diff asks the same way for istiod's config dump
(istio.io/debug/config_dump, like istioctl proxy-status POD; naming its fields needs
pip install 'kubectl-mesh[xds]'), HTTP /debug/config_dump as the fallback.
--xds-address for a control plane outside the cluster.

exit codes: 0 all selected proxies SYNCED (and --verify/--diff found nothing); 7 a proxy is not
SYNCED, --verify found a problem, --diff found a difference, or --wait timed out; 3 no
istiod / target; 4 RBAC (needs: list pods and create pods/portforward in the istio namespace,
and pods/portforward in the proxies' namespaces for --verify/--diff); 5 unreachable (neither
XDS nor HTTP answered: the message names each one's failure)."""


def build_parser(prog: str):
    from kubectl_mesh.sync.istiod import DEFAULT_ISTIO_NAMESPACE
    from kubectl_mesh.sync.options import DEFAULT_WAIT_TIMEOUT

    p = common.command_parser(prog, "Show whether each proxy's config is in sync with istiod.",
                              epilog=EPILOG)
    p.add_argument("target", nargs="?",
                   help="pod or workload: NAME[.NS], pod/, deploy/, sts/, ds/, rs/, svc/NAME[.NS]")
    p.add_argument("-l", "--selector", help="label selector instead of a target")
    p.add_argument("-f", "--file", metavar="PATH",
                   help="show a saved /debug/syncz (JSON array, or {istiod: array}; '-' = stdin)")
    p.add_argument("-i", "--istio-namespace", "--istioNamespace", dest="istio_namespace",
                   default=DEFAULT_ISTIO_NAMESPACE, metavar="NS",
                   type=common.namespace_name,
                   help=f"where istiod runs (default: {DEFAULT_ISTIO_NAMESPACE})")
    p.add_argument("--revision", metavar="REV",
                   help="only the istiod of this revision or revision tag (label "
                        "istio.io/rev=REV; a tag is followed to its revision)")
    xds = p.add_argument_group("reaching istiod (XDS first, then HTTP 15014; istioctl's flags)")
    xds.add_argument("--xds-address", metavar="HOST:PORT",
                     help="istiod's xDS address outside the cluster (external or managed "
                          "control plane); no pod discovery, no HTTP fallback")
    xds.add_argument("--plaintext", action="store_true",
                     help="plaintext xDS (port 15010, or --xds-address) without TLS or token")
    xds.add_argument("--cert-dir", metavar="DIR",
                     help="client certificate instead of a token: DIR/cert-chain.pem, "
                          "key.pem, root-cert.pem")
    xds.add_argument("--insecure", action="store_true",
                     help="do not verify istiod's certificate (NOT SECURE)")
    xds.add_argument("--authority", metavar="NAME",
                     help="the name istiod's certificate must carry (default "
                          "istiod[-REV].<istio namespace>.svc; the host with --xds-address)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--verify", action="store_true",
                      help="also ask each proxy's Envoy: rejected config, lagging versions, "
                           "disconnected proxies, proxies no istiod knows")
    mode.add_argument("--diff", action="store_true",
                      help="for one TARGET: istiod's config for it against its own config dump")
    p.add_argument("--wait", action="store_true",
                   help="poll until every selected proxy is SYNCED (or --timeout)")
    p.add_argument("--timeout", type=common.parse_duration, default=DEFAULT_WAIT_TIMEOUT,
                   metavar="DURATION", help="how long --wait waits (default: 60s)")
    common.add_cluster_flags(p, all_namespaces=True)
    common.add_output_flag(p, choices=("short", "wide", "json", "yaml"))
    common.add_concurrency_flag(p)
    return p


def options_from_args(args):
    """The frozen SyncOptions of parsed arguments; UsageError for combinations that clash."""
    from kubectl_mesh.errors import UsageError
    from kubectl_mesh.sync.options import SyncOptions

    if args.target and args.selector:
        raise UsageError("give a TARGET or -l/--selector, not both")
    if args.all_namespaces and (args.target or args.selector):
        raise UsageError("-A lists every namespace; a TARGET names one workload")
    if args.all_namespaces and args.namespace:
        raise UsageError("give -n NS or -A, not both")
    if args.diff and args.wait:
        raise UsageError("--diff compares once; run --wait first, then --diff")
    if args.file and (args.verify or args.diff or args.wait or args.selector):
        raise UsageError("--file shows a saved syncz; --verify, --diff, --wait and -l need a "
                         "cluster")
    if args.plaintext and (args.cert_dir or args.insecure):
        raise UsageError("--plaintext uses no TLS: give it without --cert-dir and --insecure")
    if args.xds_address and args.revision:
        raise UsageError("--xds-address names one control plane; --revision selects istiod "
                         "pods: give one of them")
    from kubectl_mesh.sync.options import ReachOptions
    reach = ReachOptions(xds_address=args.xds_address, plaintext=args.plaintext,
                         cert_dir=args.cert_dir, insecure=args.insecure,
                         authority=args.authority)
    if args.xds_address:
        from kubectl_mesh.sync.reach import split_address
        split_address(args.xds_address)
    return SyncOptions(cluster=common.cluster_options(args), target=args.target,
                       selector=args.selector, istio_namespace=args.istio_namespace,
                       revision=args.revision, reach=reach, output=args.output,
                       verify=args.verify,
                       diff=args.diff, wait=args.wait, timeout=args.timeout,
                       concurrency=args.concurrency, file=args.file)


def _main(argv, *, prog, stdout, stderr):
    from kubectl_mesh.sync.command import run
    args = build_parser(prog).parse_args(argv)
    return run(options_from_args(args), stdout, stderr)


def main(argv=None, stdout=None, stderr=None) -> int:
    return common.run(_main, argv, prog=common.prog_name("sync"), stdout=stdout, stderr=stderr)
