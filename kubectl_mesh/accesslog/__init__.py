"""Istio/Envoy access logs: parse (TEXT and JSON, streaming), filter, explain response
flags, group and merge per-pod streams, render through `kubectl_mesh.output`. Pure: no
cluster access – the caller fetches the logs."""

from kubectl_mesh.accesslog.analysis import GROUP_KEYS, GroupRow, group_records, merge_by_time, percentile
from kubectl_mesh.accesslog.filters import CodeSpec, RecordFilter, parse_duration_ms
from kubectl_mesh.accesslog.flags import FLAGS, ResponseFlag, explain, legend, lookup, normalize
from kubectl_mesh.accesslog.parser import ParseStats, parse_json, parse_lines, parse_text, strip_kube_prefix
from kubectl_mesh.accesslog.record import FIELDS, AccessLogRecord
from kubectl_mesh.accesslog.render import write_groups, write_legend, write_requests

__all__ = [
    "AccessLogRecord", "CodeSpec", "FIELDS", "FLAGS", "GROUP_KEYS", "GroupRow", "ParseStats",
    "RecordFilter", "ResponseFlag", "explain", "group_records", "legend", "lookup",
    "merge_by_time", "normalize", "parse_duration_ms", "parse_json", "parse_lines",
    "parse_text", "percentile", "strip_kube_prefix", "write_groups", "write_legend",
    "write_requests",
]
