"""istiod discovery and its debug API (port 15014) over ONE port-forward per istiod pod.

`find_istiods()` lists the Running istiod pods (label `app=istiod`, with a revision also
`istio.io/rev=<rev>`); `open_istiods()` opens a channel to each (the session's one way to a pod
port) and yields an `IstiodDebug` per pod, closing every channel on exit. Transport errors become
`kubectl_mesh.errors` types here, once, naming the istiod pod.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
from typing import Any, Iterator, Sequence

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

    def __init__(self, pod: Pod, channel, timeout: float | None):
        self.pod = pod
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
        if resp.status_code == 404 and path == "/debug/config_dump":
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


@contextlib.contextmanager
def open_istiods(channel_to, pods: Sequence[Pod],
                 timeout: float | None) -> Iterator[list[IstiodDebug]]:
    """A channel to every istiod pod's debug port, opened in parallel (`channel_to(pod, port)`
    is the session's one way to a pod port); all are closed on exit."""
    channels: list = []
    clients: list[IstiodDebug] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(pods))) as pool:
            futures = [pool.submit(channel_to, pod, DEBUG_PORT) for pod in pods]
            errors = []
            for future in futures:  # collect every channel, so the finally closes them all
                try:
                    channels.append(future.result())
                except Exception as e:  # noqa: BLE001 - re-raised below after the others
                    errors.append(e)
        if errors:
            raise errors[0]
        clients = [IstiodDebug(pod, ch, timeout) for pod, ch in zip(pods, channels)]
        yield clients
    finally:
        for client in clients:
            client.close()
        for channel in channels:
            channel.close()


def fetch_syncz(istiods: Sequence[IstiodDebug]) -> dict[str, Any]:
    """{istiod pod name: syncz payload}, every istiod asked at once."""
    if len(istiods) == 1:
        return {istiods[0].name: istiods[0].syncz()}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(istiods)) as pool:
        payloads = list(pool.map(lambda i: i.syncz(), istiods))
    return {i.name: payload for i, payload in zip(istiods, payloads)}
