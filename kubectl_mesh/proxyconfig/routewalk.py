"""`routes --trace URL` and `routes --check` on one proxy: gather its listeners, routes,
clusters and endpoints (live, or a `--file` dump), then walk one request through them
(`trace.trace_request`) or report every broken route (`trace.check_config`)."""

from __future__ import annotations

from typing import IO

from kubectl_mesh.proxyconfig.options import RouteWalkOptions
from kubectl_mesh.proxyconfig.views import MASKS

# Sections a trace walks: listeners → route configs → clusters. Envoy applies one field mask to
# every section type, so each section is its own masked fetch.
TRACE_SECTIONS = ("listeners", "routes", "clusters")


def run(opts: RouteWalkOptions, stdout: IO[str], stderr: IO[str]) -> int:
    from kubectl_mesh.configdump.shape import reading
    from kubectl_mesh.trace import parse_request

    request = parse_request(opts.url, list(opts.headers), opts.method) \
        if opts.url is not None else None
    dump, endpoints, port_map, ref = _gather(opts, stderr)
    with reading(ref):
        if request is not None:
            return _trace(dump, request, endpoints, port_map, opts.output, stdout)
        return _check(dump, endpoints, ref, opts.output, stdout)


def _gather(opts: RouteWalkOptions, stderr):
    """(config dump, endpoints or None, service port → target port, source) for the walk."""
    from kubectl_mesh.configdump import ConfigDump, read_dump
    from kubectl_mesh.configdump.shape import reading
    if opts.file:
        dump = read_dump(opts.file)
        # a dump taken with ?include_eds carries endpoints; otherwise they are not checked
        with reading(opts.file):
            endpoints = dump.endpoints if dump.has("endpoints") else None
        return dump, endpoints, {}, opts.file
    from kubectl_mesh.session import Session, pick_one
    with Session.open(opts.cluster) as session:
        pods = session.proxies(opts.target, opts.selector, stderr=stderr)
        pod = pick_one(pods, opts.target or f"-l {opts.selector}", stderr, others=None)
        with session.admin(pod) as admin:
            configs = [c for section in TRACE_SECTIONS for c in admin.config_dump(
                mask=MASKS[section]).get("configs", [])]
            dump = ConfigDump({"configs": configs}, pod.ref)
            endpoints = ConfigDump(admin.clusters(), pod.ref).endpoints
        # A gateway is reached on its own Service's port; a sidecar's outbound request keeps
        # the port of the Service it calls (iptables keep the original destination, and
        # istiod names the outbound listener and route after the Service port:
        # pilot/pkg/networking/core/listener.go `buildSidecarOutboundListeners`).
        port_map = service_port_map(session.api, pod) if pod.proxy_type == "router" else {}
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
    from kubectl_mesh.trace import render_trace, trace_request
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
