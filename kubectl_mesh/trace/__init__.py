"""`routes --trace URL` and `routes --check`: what Envoy does with a request, from a config
dump alone (pure: no cluster access).

    request = parse_request("http://catalog.istioinaction.io/items", ["x-user:alice"], "GET")
    result = trace_request(dump, request, port_map={80: 8080}, endpoints=clusters_dump.endpoints)
    stdout.write(render_trace(result))            # or output.write(out, "json", data=result.to_dict())
    if not result.ok: raise FindingsError(...)

    findings = check_config(dump, endpoints)      # [] when clean
    table = findings_table(findings, wide=False)
"""

from kubectl_mesh.trace.check import Finding, check_config, covers, findings_table
from kubectl_mesh.trace.render import render_trace
from kubectl_mesh.trace.request import TraceRequest, parse_header, parse_request
from kubectl_mesh.trace.verdict import (
    OK_OUTCOMES, Answer, ClusterTarget, EndpointState, Hop, TraceResult,
)
from kubectl_mesh.trace.walk import load_endpoints, trace_request

__all__ = [
    "Answer", "ClusterTarget", "EndpointState", "Finding", "Hop", "OK_OUTCOMES", "TraceRequest",
    "TraceResult", "check_config", "covers", "findings_table", "load_endpoints", "parse_header",
    "parse_request", "render_trace", "trace_request",
]
