"""`kubectl mesh routes TARGET`: the proxy's route configs, virtual hosts and matches;
`--trace URL` walks one request through the proxy's config and says why it fails;
`--check` reports every broken route of the proxy (istioctl analyze on the live config)."""

from __future__ import annotations

from kubectl_mesh.cli import common, proxyconfig

EPILOG = """\
examples:
  kubectl mesh routes deploy/istio-ingressgateway -n istio-system
  kubectl mesh routes deploy/istio-ingressgateway -n istio-system \\
      --trace http://catalog.istioinaction.io/items
  kubectl mesh routes deploy/catalog -n istioinaction --check

--trace exits 0 when the request would reach a healthy endpoint and 7 when it would not;
--check exits 7 when it finds something."""

# Sections a trace walks: listeners → route configs → clusters. Envoy applies one field mask to
# every section type, so each section is its own masked fetch.
TRACE_SECTIONS = ("listeners", "routes", "clusters")


def _flags(p) -> None:
    p.add_argument("--name", default="", help="only the route configuration with this exact name")
    p.add_argument("--summary", action="store_true",
                   help="one row per route configuration (NAME VIRTUAL HOSTS)")
    p.add_argument("--trace", metavar="URL",
                   help="walk this request through the proxy's config and say what Envoy answers")
    p.add_argument("--header", action="append", default=[], metavar="K:V",
                   help="request header for --trace (repeatable)")
    p.add_argument("--method", default="GET", help="request method for --trace (default: GET)")
    p.add_argument("--check", action="store_true",
                   help="report dangling clusters, clusters without healthy endpoints and "
                        "shadowed routes in the proxy's live config")


def _table(dump, args, fmt):
    from kubectl_mesh.configdump import RouteFilter, route_table
    # -o json|yaml prints the selected configs as they are; --all-pods compares rows
    rows = fmt in ("short", "wide") or args.all_pods
    return route_table(dump.routes, RouteFilter(name=args.name), verbose=not args.summary,
                       wide=fmt == "wide", rows=rows)


RESOURCE = proxyconfig.Resource("routes", "Show a proxy's routes: virtual hosts, matches and "
                                "destinations; trace a request; check the live config.",
                                _flags, _table, epilog=EPILOG)


def build_parser(prog: str):
    return proxyconfig.build_parser(RESOURCE, prog)


def _main(argv, *, prog, stdout, stderr):
    args = build_parser(prog).parse_args(argv)
    tracing = args.trace is not None  # `--trace ""` is a URL too: a bad one
    if not (tracing or args.check):
        if args.header:
            from kubectl_mesh.errors import UsageError
            raise UsageError("--header is for --trace")
        return proxyconfig.run(RESOURCE, argv, prog=prog, stdout=stdout, stderr=stderr)
    from kubectl_mesh.errors import UsageError
    if tracing and args.check:
        raise UsageError("give --trace URL or --check, not both")
    if args.all_pods:
        raise UsageError("--all-pods compares tables; --trace and --check look at one pod")
    if args.header and not tracing:
        raise UsageError("--header is for --trace")
    from kubectl_mesh.configdump.shape import reading
    from kubectl_mesh.trace import parse_request
    request = parse_request(args.trace, args.header, args.method) if tracing else None
    dump, endpoints, port_map, ref = _gather(args, prog, stderr)
    with reading(ref):
        if request is not None:
            return _trace(dump, request, endpoints, port_map, args.output, stdout)
        return _check(dump, endpoints, ref, args.output, stdout)


def _gather(args, prog, stderr):
    """(config dump, endpoints or None, service port → target port, source) for the walk."""
    from kubectl_mesh.configdump import ConfigDump, read_dump
    from kubectl_mesh.configdump.shape import reading
    from kubectl_mesh.errors import UsageError
    if args.file:
        if args.target or args.selector:
            raise UsageError("give a target or --file, not both")
        dump = read_dump(args.file)
        # a dump taken with ?include_eds carries endpoints; otherwise they are not checked
        with reading(args.file):
            endpoints = dump.endpoints if dump.has("endpoints") else None
        return dump, endpoints, {}, args.file
    if not (args.target or args.selector):
        raise UsageError("a target or --file is required",
                         hint=f"e.g. {prog} deploy/istio-ingressgateway -n istio-system --check")
    from kubectl_mesh.session import Session, pick_one
    with Session.open(common.cluster_options(args)) as session:
        pods = session.proxies(args.target, args.selector, stderr=stderr)
        pod = pick_one(pods, args.target or f"-l {args.selector}", stderr)
        with session.admin(pod) as admin:
            configs = [c for section in TRACE_SECTIONS for c in admin.config_dump(
                mask=proxyconfig.MASKS[section]).get("configs", [])]
            dump = ConfigDump({"configs": configs}, pod.ref)
            endpoints = ConfigDump(admin.clusters(), pod.ref).endpoints
        port_map = service_port_map(session.api, pod)
    return dump, endpoints, port_map, pod.ref


def service_port_map(api, pod) -> dict[int, int]:
    """Service port → the pod's target port, for the Services that select the pod (a gateway
    is reached on its Service's port 80 but its listener is on 8080)."""
    mapping: dict[int, int] = {}
    services = api.list_resource("services", pod.namespace)
    for svc in services:
        spec = svc.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector or any(pod.labels.get(k) != v for k, v in selector.items()):
            continue
        for port in spec.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, int) or str(target).isdigit():
                mapping.setdefault(int(port["port"]), int(target))
    return mapping


def _trace(dump, request, endpoints, port_map, fmt, stdout) -> int:
    from kubectl_mesh import output
    from kubectl_mesh.errors import FindingsError
    from kubectl_mesh.trace import trace_request, render_trace
    result = trace_request(dump, request, port_map=port_map, endpoints=endpoints)
    if fmt in ("json", "yaml"):
        output.write(stdout, fmt, data=result.to_dict())
    else:
        stdout.write(render_trace(result, use_colour=output.use_colour(stdout)))
    if not result.ok:
        answer = result.answers[0].describe() if result.answers else result.outcome
        raise FindingsError(f"{request.url} would fail: {answer}")
    return 0


def _check(dump, endpoints, ref, fmt, stdout) -> int:
    from kubectl_mesh import output
    from kubectl_mesh.errors import FindingsError
    from kubectl_mesh.trace import check_config, findings_table
    findings = check_config(dump, endpoints)
    table = findings_table(findings, wide=fmt == "wide")
    output.write(stdout, fmt, headers=table.headers, rows=table.rows, data=table.data,
                 gap=table.gap)
    if findings:
        raise FindingsError(f"{len(findings)} problem(s) in the routes of {ref}")
    return 0


def main(argv=None, stdout=None, stderr=None) -> int:
    return common.run(_main, argv, prog=common.prog_name("routes"), stdout=stdout, stderr=stderr)
