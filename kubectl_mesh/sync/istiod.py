"""istiod discovery and its debug API (port 15014) over ONE port-forward per istiod pod.

`find_istiods()` lists the Running istiod pods (label `app=istiod`, with a revision also
`istio.io/rev=<rev>`); `IstiodDebug` reads one pod's debug endpoints over a channel to its port
15014 (`sync.reach` decides whether that or xDS is used). Transport errors become
`kubectl_mesh.errors` types here, once, naming the istiod pod.
"""

from __future__ import annotations

import json
from typing import Any

from kubectl_mesh import podhttp
from kubectl_mesh.errors import BadInputError, NotFoundError, UnreachableError
from kubectl_mesh.kube.pods import Pod

ISTIOD_LABEL = "app=istiod"
REVISION_LABEL = "istio.io/rev"
DEBUG_PORT = 15014
DEFAULT_ISTIO_NAMESPACE = "istio-system"


def istiod_selector(revision: str | None) -> str:
    """The label selector istiod pods carry: `app=istiod[,istio.io/rev=<rev>]`."""
    return f"{ISTIOD_LABEL},{REVISION_LABEL}={revision}" if revision else ISTIOD_LABEL


def find_istiods(api, namespace: str, revision: str | None = None) -> list[Pod]:
    """The Running, not terminating istiod pods, by name; NotFoundError says where it looked."""
    selector = istiod_selector(revision)
    pods = sorted((Pod.from_json(p) for p in api.list_pods(namespace, label_selector=selector)),
                  key=lambda p: p.name)
    running = [p for p in pods if p.phase == "Running" and not p.terminating]
    if running:
        return running
    where = f"namespace {namespace} with label {selector}"
    if pods:
        states = ", ".join(f"{p.name}: {'Terminating' if p.terminating else p.phase}"
                           for p in pods[:5])
        raise UnreachableError(f"no Running istiod pod in {where} ({states})",
                               hint=f"kubectl describe pods -n {namespace} -l {selector}")
    hint = ("is Istio installed there? give --istio-namespace" +
            (", or check --revision" if revision else ", or --revision for a revisioned install") +
            f"; kubectl get pods -A -l {ISTIOD_LABEL}")
    raise NotFoundError(f"no istiod pod in {where}", hint=hint)


class IstiodDebug:
    """One istiod's debug endpoints, over the channel to its port 15014; safe to call from
    several threads (kept-alive connections are pooled)."""

    via = f"HTTP {DEBUG_PORT}"

    def __init__(self, pod: Pod, channel, timeout: float | None):
        self.pod = pod
        self.where = pod.ref
        self.channel = channel
        self.timeout = timeout
        self._http = podhttp.PodHttp(channel.describe, timeout, connect=channel.connect)

    @property
    def name(self) -> str:
        return self.pod.name

    def close(self) -> None:
        self._http.close()

    def syncz(self, namespace: str | None = None) -> Any:
        """The decoded `/debug/syncz` (a JSON array, or None for Go's empty slice); with
        `namespace`, only that namespace's proxies (istiod's `?namespace=`)."""
        return self._json("/debug/syncz", {"namespace": namespace} if namespace else {})

    def proxies(self, namespace: str | None = None) -> list:
        """The proxies of `syncz(namespace)`, parsed (`syncz.ProxySync`)."""
        from kubectl_mesh.syncz import parse_syncz
        return parse_syncz(self.syncz(namespace), self.name)

    def config_dump(self, proxy_id: str) -> dict:
        """What this istiod would send `proxy_id` (`pod.namespace`), as an Envoy ConfigDump."""
        return self._json("/debug/config_dump", {"proxyID": proxy_id})

    def _json(self, path: str, params: dict) -> Any:
        where = f"istiod {self.pod.ref}"
        try:
            resp = self._http.request("GET", path, params)
        except podhttp.Timeout as e:
            raise UnreachableError(f"{where} did not answer {path} within {self.timeout:g}s",
                                   hint="is istiod overloaded or still starting? kubectl logs "
                                        f"-n {self.pod.namespace} {self.pod.name}; or raise "
                                        "--request-timeout") from e
        except podhttp.Unreachable as e:
            seen = self.channel.errors()
            raise UnreachableError(f"cannot reach {where} on port {DEBUG_PORT} through the "
                                   "port-forward",
                                   hint=f"port-forward: {seen[-1]}" if seen else
                                   "is istiod running and listening on 15014?") from e
        # Go's http.NotFound ("404 page not found"): no /debug/* at all (ENABLE_DEBUG_ON_HTTP
        # =false), not a proxy this istiod does not know (pilot/pkg/xds/debug.go errorHandler)
        if resp.status_code == 404 and path == "/debug/config_dump" and \
                not resp.text.startswith("404 page not found"):
            raise NotFoundError(f"{where} has no connection from proxy {params.get('proxyID')}",
                                hint=resp.text.strip()[:200] or None)
        if resp.status_code != 200:
            first = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""
            raise UnreachableError(f"{where} answered {resp.status_code} to {path}"
                                   + (f": {first}" if first else ""))
        try:
            return json.loads(resp.content)
        except ValueError as e:
            raise BadInputError(f"{where} answered {path} with something that is not JSON "
                                f"({len(resp.content)} bytes)",
                                hint=f"is port {DEBUG_PORT} istiod's monitoring port?") from e
