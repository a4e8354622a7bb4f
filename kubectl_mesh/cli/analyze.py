"""`kubectl mesh analyze [FILE|DIR|-]...`: find misconfigured Istio objects (istioctl analyze's
codes, levels and messages) in the cluster, in files, or in files applied over the cluster."""

from __future__ import annotations

import argparse

from kubectl_mesh.cli import common

EPILOG = """\
inputs:
  no FILE            the cluster's objects (every namespace is read; messages are kept for
                     -n NS, the context's namespace, or all with -A)
  FILE|DIR|-         YAML/JSON files (multi-document, Lists), a folder's *.yaml|*.yml|*.json
                     (-R: its subfolders too), '-' stdin; laid over the cluster's objects as if
                     applied, or alone with --use-kube=false

examples:
  kubectl mesh analyze -n istioinaction
  kubectl mesh analyze catalog-destinationrule.yaml -n istioinaction   # before applying it
  kubectl mesh analyze --use-kube=false manifests/ -R -A
  kubectl mesh analyze -A --suppress "IST0102=Namespace *" --output-threshold Warning
  kubectl mesh analyze --use-kube=false --meshConfigFile mesh.yaml manifests/ -R -A
  kubectl mesh analyze -n istioinaction --live      # and what the proxies carry or reject

exit codes: 0 no message at or above --failure-threshold (default Error); 7 there are; 2 bad
flags; 3 a file or the namespace not found; 4 RBAC refused the namespace list; 5 the API server
unreachable; 6 a file that is no YAML or no Kubernetes object (file:line named)."""


def _level(text: str):
    from kubectl_mesh.analyze.messages import Level

    try:
        return Level.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _suppression(text: str):
    from kubectl_mesh.analyze.options import Suppression

    code, eq, resource = text.partition("=")
    if not eq or not code or not resource or "=" in resource:
        raise argparse.ArgumentTypeError(
            f"invalid suppression {text!r} (CODE=RESOURCE, e.g. \"IST0102=Namespace default\" or "
            f"\"IST0101=VirtualService *.istioinaction\")")
    return Suppression(code.strip(), resource.strip())


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = common.command_parser(prog, "Find misconfigured Istio objects, in the cluster or in files "
                                    "(istioctl analyze's messages).", epilog=EPILOG)
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="YAML/JSON files or folders to analyze ('-' = stdin)")
    p.add_argument("-R", "--recursive", action="store_true",
                   help="read the subfolders of folders too")
    p.add_argument("-k", "--use-kube", type=common.boolean, nargs="?", const=True, default=True,
                   metavar="BOOL", help="read the cluster (default true); --use-kube=false "
                                        "analyzes the files alone")
    p.add_argument("--output-threshold", type=_level, default=None, metavar="LEVEL",
                   help="show messages of this level or worse: Info|Warning|Error (default Info)")
    p.add_argument("--failure-threshold", type=_level, default=None, metavar="LEVEL",
                   help="exit 7 for messages of this level or worse (default Error)")
    p.add_argument("-S", "--suppress", type=_suppression, action="append", default=[],
                   metavar="CODE=RESOURCE",
                   help="leave out CODE on RESOURCE ('Kind ns/name' or 'Kind name.ns', '*' "
                        "matches anything); repeatable")
    p.add_argument("--live", action="store_true",
                   help="also ask the proxies: applied VirtualServices/DestinationRules they do "
                        "not carry yet, NACKs with Envoy's error, the gateways' routes --check "
                        "findings (codes MESH0001-MESH0004)")
    p.add_argument("-L", "--list-analyzers", action="store_true",
                   help="list the analyzers and exit")
    p.add_argument("--meshConfigFile", "--mesh-config-file", dest="mesh_config_file",
                   metavar="FILE", help="the mesh config (MeshConfig YAML) to analyze with; "
                                        "default: istiod's ConfigMap, or Istio's defaults offline")
    p.add_argument("-i", "--istioNamespace", "--istio-namespace", dest="istio_namespace",
                   default="istio-system", metavar="NS", type=common.namespace_name,
                   help="where istiod's mesh config ConfigMap is (default: istio-system)")
    p.add_argument("-r", "--revision", metavar="REV",
                   help="istiod revision whose mesh config to read (ConfigMap istio-REV)")
    common.add_cluster_flags(p, all_namespaces=True)
    common.add_output_flag(p, choices=("short", "json", "yaml"))
    return p


def options_from_args(args: argparse.Namespace):
    from kubectl_mesh.analyze.messages import Level
    from kubectl_mesh.analyze.options import AnalyzeOptions
    from kubectl_mesh.errors import UsageError

    if args.all_namespaces and args.namespace:
        raise UsageError("give -n NS or -A, not both")
    if not args.use_kube and not args.files and not args.list_analyzers:
        raise UsageError("--use-kube=false analyzes files: give FILE, DIR or '-'")
    if args.live and not args.use_kube:
        raise UsageError("--live asks the cluster's proxies: it does not go with --use-kube=false")
    if args.files.count("-") > 1:
        raise UsageError("'-' (stdin) can be given once")
    return AnalyzeOptions(
        cluster=common.cluster_options(args), files=tuple(args.files),
        recursive=args.recursive, use_kube=args.use_kube, output=args.output,
        output_threshold=Level.INFO if args.output_threshold is None else args.output_threshold,
        failure_threshold=(Level.ERROR if args.failure_threshold is None
                           else args.failure_threshold),
        suppressions=tuple(args.suppress), list_analyzers=args.list_analyzers,
        mesh_config_file=args.mesh_config_file, istio_namespace=args.istio_namespace,
        revision=args.revision, live=args.live)


def _main(argv, *, prog, stdout, stderr):
    from kubectl_mesh.analyze.command import run

    args = build_parser(prog).parse_args(argv)
    return run(options_from_args(args), stdout, stderr)


def main(argv=None, stdout=None, stderr=None) -> int:
    return common.run(_main, argv, prog=common.prog_name("analyze"), stdout=stdout, stderr=stderr)
