"""The core of `kubectl mesh stats`: one proxy's stats from its Envoy admin, filtered, written
as Envoy's text, Prometheus text, or JSON/YAML through `output.py`.

Where istioctl gets them (istioctl/pkg/proxyconfig/proxyconfig.go
`setupEnvoyServerStatsConfig`, `setupEnvoyClusterStatsConfig`): server `short` is `/stats`,
`json|yaml` `/stats?format=json`, `prom` `/stats/prometheus`; clusters `short` is `/clusters`,
`json|yaml` `/clusters?format=json`. The filter is Envoy's own `filter` query parameter (a
partial regex match on the stat name) for the server's stats; on `/clusters`, which has none,
it selects the clusters whose name it matches."""

from __future__ import annotations

import re
from typing import IO

from kubectl_mesh.errors import UsageError
from kubectl_mesh.stats.options import StatsOptions


def run(opts: StatsOptions, stdout: IO[str], stderr: IO[str]) -> int:
    from kubectl_mesh import output
    from kubectl_mesh.session import Session, pick_one

    pattern = _pattern(opts.filter)
    if opts.kind == "clusters" and opts.output == "prom":
        # istioctl: "allowed formats are: json,yaml,short" for --type clusters
        raise UsageError("-o prom is for --type server; --type clusters takes short, json or "
                         "yaml")
    with Session.open(opts.cluster) as session:
        pods = session.proxies(opts.target, opts.selector, stderr=stderr)
        pod = pick_one(pods, opts.target or f"-l {opts.selector}", stderr, others=None)
        with session.admin(pod) as admin:
            if opts.kind == "server":
                data = _server(admin, opts.output, opts.filter)
            else:
                data = _clusters(admin, opts.output, pattern)
    if opts.output in ("json", "yaml"):
        output.write(stdout, opts.output, data=data)
    else:
        output.write_text(stdout, data)
    return 0


def _pattern(text: str | None):
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as e:
        raise UsageError(f"--filter {text!r} is not a regular expression: {e}") from e


def _server(admin, fmt: str, flt: str | None):
    params = {"filter": flt} if flt else {}
    if fmt in ("json", "yaml"):
        return admin.stats(flt)
    if fmt == "prom":
        return admin.text("/stats/prometheus", params)
    return admin.text("/stats", params)


def _clusters(admin, fmt: str, pattern):
    if fmt in ("json", "yaml"):
        data = admin.clusters()
        if pattern is not None:
            data = dict(data, cluster_statuses=[
                c for c in data.get("cluster_statuses") or []
                if isinstance(c, dict) and pattern.search(str(c.get("name", "")))])
        return data
    text = admin.text("/clusters")
    if pattern is None:
        return text
    # `cluster::host::field::value` and `cluster::field::value` lines: keep those of the
    # clusters the filter matches
    return "".join(line for line in text.splitlines(True)
                   if pattern.search(line.split("::", 1)[0]))
