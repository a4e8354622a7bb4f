"""`kubectl mesh describe pod|service TARGET`: the Istio configuration that affects a pod or a
service (istioctl x describe's sections and wording), checked against what the proxies carry."""

from __future__ import annotations

from kubectl_mesh.cli import common

KINDS = {"pod": "pod", "po": "pod", "pods": "pod",
         "service": "service", "svc": "service", "services": "service"}

EPILOG = """\
what it shows (istioctl x describe's sections):
  pod        revision, ports, in the mesh or why not
  Service    each one selecting the pod: ports, protocol and the pod port they target
  DestinationRule   the one that applies: the subsets the pod is in and not, traffic policy
  VirtualService    the routes to the service: destinations, weights, subsets, matches,
             timeouts, retries, fault injection, mirrors; a subset that is not defined or
             selects no pod is a warning
  PeerAuthentication  the effective mTLS mode (workload, namespace or mesh-wide, per port);
             Sidecar and AuthorizationPolicies that select the pod
  ingress    the Gateway and VirtualService exposing it, and the URL through the gateway
  Findings of `kubectl mesh analyze` about these objects are shown under them; the pod's and
  the gateway's Envoys are asked whether they carry the VirtualServices and DestinationRule
  (--no-proxy-check: don't ask).

targets:
  pod NAME[.NS] | deploy/NAME | sts/NAME | ds/NAME | svc/NAME   (a workload: one of its pods)
  service NAME[.NS] | svc/NAME

examples:
  kubectl mesh describe pod catalog-5c99bc2986-86b14 -n istioinaction
  kubectl mesh describe pod deploy/catalog -n istioinaction
  kubectl mesh describe svc catalog.istioinaction -o json

exit codes: 0 described (warnings are part of the description); 2 bad arguments; 3 pod, workload
or service not found; 4 RBAC refused (describe lists pods and services in every namespace, and
port-forwards to the proxies' admin port); 5 the API server unreachable. A proxy that cannot be
read is a warning on stderr: the rest is still described."""


def _kind(text: str) -> str:
    import argparse

    kind = KINDS.get(text.lower())
    if kind is None:
        raise argparse.ArgumentTypeError(f"unknown resource type {text!r} (pod or service)")
    return kind


def build_parser(prog: str):
    p = common.command_parser(prog, "Describe a pod or service and the Istio configuration that "
                                    "affects it (istioctl x describe).", epilog=EPILOG)
    p.add_argument("kind", type=_kind, choices=("pod", "service"), metavar="pod|service",
                   help="pod (po) or service (svc)")
    p.add_argument("target", help="NAME[.NAMESPACE]; for pod also deploy/, sts/, ds/, rs/, svc/NAME")
    p.add_argument("-i", "--istio-namespace", "--istioNamespace", dest="istio_namespace",
                   default="istio-system", metavar="NS", type=common.namespace_name,
                   help="where the mesh config lives (its root namespace holds mesh-wide "
                        "policies; default: istio-system)")
    p.add_argument("--ignoreUnmeshed", "--ignore-unmeshed", dest="ignore_unmeshed",
                   action="store_true", help="no warnings for pods outside the mesh")
    p.add_argument("--no-proxy-check", dest="check_proxies", action="store_false",
                   help="do not ask the Envoys what they carry (no port-forward)")
    common.add_cluster_flags(p)
    common.add_output_flag(p, choices=("short", "json", "yaml"))
    return p


def options_from_args(args):
    from kubectl_mesh.describe.options import DescribeOptions

    return DescribeOptions(cluster=common.cluster_options(args), kind=args.kind,
                           target=args.target, output=args.output,
                           istio_namespace=args.istio_namespace,
                           check_proxies=args.check_proxies, ignore_unmeshed=args.ignore_unmeshed)


def _main(argv, *, prog, stdout, stderr):
    from kubectl_mesh.describe.command import run

    args = build_parser(prog).parse_args(argv)
    return run(options_from_args(args), stdout, stderr)


def main(argv=None, stdout=None, stderr=None) -> int:
    return common.run(_main, argv, prog=common.prog_name("describe"), stdout=stdout, stderr=stderr)
