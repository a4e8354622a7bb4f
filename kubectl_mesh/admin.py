"""Envoy admin API client over `podhttp` (one carrier per pod port, usually the port-forward
WebSocket itself: `kube.portforward.open_channel`). Every error names the pod; transport
errors are translated once, here, into `UnreachableError` / `AdminError`.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Callable, Iterator

from kubectl_mesh import podhttp
from kubectl_mesh.errors import AdminError, BadInputError, UnreachableError

AdminResponse = podhttp.Response


class NotJsonError(BadInputError):
    """Envoy answered a JSON endpoint with text: `said` is its first line (e.g. `Failed to
    convert protobuf message to JSON string: ... could not find @type '...'`)."""

    def __init__(self, message: str, hint: str | None = None, *, said: str = ""):
        super().__init__(message, hint)
        self.said = said


class EnvoyAdmin:
    """Talks to one Envoy's admin port (`base_url` like `http://127.0.0.1:15000`).

    `connect`, when given, returns a connected socket-like object (`sendall`, `makefile`,
    `close`) to the admin port; `base_url` then only names it in messages.
    """

    def __init__(self, base_url: str, pod_ref: str, timeout: float | None = 10.0, *,
                 connect: Callable[[], Any] | None = None):
        self.base_url = base_url.rstrip("/")
        self.pod_ref = pod_ref
        self.timeout = timeout
        self._http = podhttp.PodHttp(self.base_url, timeout, connect=connect)

    @property
    def bytes_fetched(self) -> int:
        """Total response body bytes, for benchmarks."""
        return self._http.bytes_fetched

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EnvoyAdmin:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- endpoints ------------------------------------------------------------------------

    def config_dump(self, mask: str | None = None, resource: str | None = None,
                    name_regex: str | None = None, include_eds: bool = False, *,
                    while_waiting: Callable[[], object] | None = None) -> dict:
        """`/config_dump`; `mask` (comma-separated fields), `resource` (e.g.
        `dynamic_active_clusters`), `name_regex` (RE2 full match), `include_eds`.
        `while_waiting()` runs once the request is sent, while Envoy builds the answer."""
        params: dict[str, str] = {}
        if mask:
            params["mask"] = mask
        if resource:
            params["resource"] = resource
        if name_regex:
            params["name_regex"] = name_regex
        if include_eds:
            params["include_eds"] = "true"
        return self._json("GET", "/config_dump", params, while_waiting)

    def clusters(self, *, while_waiting: Callable[[], object] | None = None) -> dict:
        """`/clusters?format=json` (host health and outlier state)."""
        return self._json("GET", "/clusters", {"format": "json"}, while_waiting)

    def listeners(self) -> dict:
        """`/listeners?format=json`."""
        return self._json("GET", "/listeners", {"format": "json"})

    def stats(self, filter: str | None = None) -> dict:  # noqa: A002 - Envoy's parameter name
        """`/stats?format=json[&filter=regex]`; integers stay exact (hashes exceed 2^53)."""
        params = {"format": "json"}
        if filter:
            params["filter"] = filter
        return self._json("GET", "/stats", params)

    def text(self, path: str, params: dict | None = None) -> str:
        """The text answer of a GET: `/stats` (`name: value` lines), `/stats/prometheus`,
        `/clusters` (`cluster::host::field::value` lines)."""
        return self._request("GET", path, params or {}).text

    def server_info(self) -> dict:
        return self._json("GET", "/server_info", {})

    def ready(self) -> bool:
        """True when `/ready` answers 200 (LIVE); False for 503 (not ready yet)."""
        resp = self._request("GET", "/ready", {}, ok=(200, 503))
        return resp.status_code == 200

    def logging(self, levels: dict[str, str] | None = None,
                level: str | None = None) -> dict[str, str]:
        """POST `/logging`: set `level` for all loggers and/or `levels` per logger, then
        return the active levels {logger: level}. Envoy rejects unknown names with 400."""
        if level:
            self._request("POST", "/logging", {"level": level})
        if levels:
            paths = ",".join(f"{name}:{lvl}" for name, lvl in levels.items())
            self._request("POST", "/logging", {"paths": paths})
        return parse_loggers(self._request("POST", "/logging", {}).text)

    @contextlib.contextmanager
    def stream(self, method: str, target: str) -> Iterator[AdminStream]:
        """Any admin request (`target` = encoded path and query) whose 200 answer is read as it
        arrives (`chunks()`); any other status is raised as `AdminError` with the first line
        of Envoy's text."""
        path = target.split("?", 1)[0]
        with self._translated(path):
            with self._http.stream(method, target) as resp:
                if resp.status_code != 200:
                    body = resp.head(64 * 1024).decode("utf-8", errors="replace")
                    raise self._status_error(method, target, resp.status_code, body)
                yield AdminStream(resp, self)

    # -- transport ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translated(self, path: str) -> Iterator[None]:
        """podhttp's transport failures as this pod's `UnreachableError`."""
        try:
            yield
        except podhttp.Timeout as e:
            raise UnreachableError(
                f"Envoy admin of {self.pod_ref} did not answer {path} within "
                f"{self.timeout:g}s",
                hint="raise --request-timeout, or check the pod is not overloaded",
            ) from e
        except podhttp.Unreachable as e:
            raise UnreachableError(
                f"cannot connect to Envoy admin of {self.pod_ref} at {self.base_url}"
                f" (connection refused or reset)",
                hint="is the istio-proxy container running?",
            ) from e

    def _status_error(self, method: str, path: str, status: int, body: str) -> AdminError:
        first = body.strip().splitlines()[0][:200] if body.strip() else ""
        # a 404 for an unknown path goes on with the whole `admin commands are:` help
        first = first.removesuffix(" admin commands are:")
        return AdminError(
            f"Envoy admin of {self.pod_ref} answered {status} to {method} {path}"
            + (f": {first}" if first else ""),
            status=status, body=body,
        )

    def _json(self, method: str, path: str, params: dict,
              while_waiting: Callable[[], object] | None = None) -> Any:
        resp = self._request(method, path, params, while_waiting=while_waiting)
        try:
            # json.loads keeps integers exact (Python ints), unlike float-based parsers.
            return json.loads(resp.content)
        except ValueError as e:
            # Envoy answers 200 with one line of text when it cannot write its config as
            # JSON, e.g. a resource it rejected is of a type this build does not know (an
            # Istio extension on an upstream Envoy): that line is the cause
            from kubectl_mesh.output import printable
            lines = resp.content[:400].decode(errors="replace").strip().splitlines()
            said = printable(lines[0][:240]) if lines else ""
            raise NotJsonError(
                f"Envoy admin of {self.pod_ref} returned non-JSON for {path}"
                f" ({len(resp.content)} bytes)" + (f": {said}" if said else ""),
                hint="a resource Envoy rejected may be of a type this Envoy build does not "
                     "know; kubectl mesh sync --verify names what it rejected",
                said=said,
            ) from e

    def _request(self, method: str, path: str, params: dict,
                 ok: tuple[int, ...] = (200,), *,
                 while_waiting: Callable[[], object] | None = None) -> AdminResponse:
        with self._translated(path):
            resp = self._http.request(method, path, params, while_waiting=while_waiting)
        if resp.status_code not in ok:
            raise self._status_error(method, path, resp.status_code, resp.text)
        return resp


class AdminStream:
    """A 200 answer of the admin API being read: `content_type`, and `chunks()` whose
    transport failures are the pod's `UnreachableError`."""

    def __init__(self, resp: podhttp.StreamedResponse, admin: EnvoyAdmin):
        self._resp = resp
        self._admin = admin
        self.content_type = resp.content_type

    def chunks(self, size: int = 64 * 1024) -> Iterator[bytes]:
        with self._admin._translated(self._resp.path):
            yield from self._resp.chunks(size)


@contextlib.contextmanager
def open_admin(config, pod, admin_port: int = 15000, timeout: float | None = 10.0, *,
               kubectl: str | None = None, tls=None, notices=None):
    """`with open_admin(cfg, pod) as admin:` an `EnvoyAdmin` over the one channel to the
    pod's admin port (`kube.portforward.open_channel`). When the admin client cannot reach
    Envoy and the channel saw an error (e.g. nothing listens on the port), the error says so.
    `tls` (a `wsdial.TlsReuse`) lets many channels share one TLS context and session."""
    from kubectl_mesh.kube.portforward import open_channel

    channel = open_channel(config, pod, admin_port, timeout=timeout, kubectl=kubectl, tls=tls,
                           notices=notices)
    with admin_over(channel, pod, timeout) as admin:
        yield admin


@contextlib.contextmanager
def admin_over(channel, pod, timeout: float | None = 10.0):
    """`with admin_over(session.channel(pod, 15000), pod) as admin:` an `EnvoyAdmin` on the
    channel, which is closed on the way out. When the admin client cannot reach Envoy and the
    channel saw an error (e.g. nothing listens on the port), the error says so."""
    ref = f"{pod.name}.{pod.namespace}"
    admin = EnvoyAdmin(channel.describe, pod_ref=ref, timeout=timeout, connect=channel.connect)
    try:
        try:
            yield admin
        finally:
            admin.close()
    except UnreachableError as e:
        seen = channel.errors()
        if seen and type(e) is UnreachableError:  # not AdminError: Envoy did answer then
            raise UnreachableError(e.message, hint=f"port-forward: {seen[-1]}") from e
        raise
    finally:
        channel.close()


def parse_loggers(text: str) -> dict[str, str]:
    """Envoy's `active loggers:` listing (`  name: level` lines) → {name: level}."""
    out = {}
    for line in text.splitlines():
        name, sep, lvl = line.strip().partition(":")
        if sep and lvl.strip() and name != "active loggers":
            out[name.strip()] = lvl.strip()
    return out
