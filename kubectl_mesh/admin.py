"""Envoy admin API client (`http.client`: `requests` costs ~70 ms of start-up and a copy of
every body). Every error names the pod; transport errors are translated once, here, into
`UnreachableError` / `AdminError`.

One connection is kept alive for consecutive calls. By default it is a TCP connection to
`base_url`; `connect` may supply another carrier, e.g. a port-forward WebSocket used directly
as the socket (`kube.wschannel`), so no local listener or relay thread sits in between.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

from kubectl_mesh.errors import AdminError, BadInputError, UnreachableError

_HEADERS = {"Accept": "*/*", "User-Agent": "kubectl-mesh"}
# A kept-alive connection the other end closed meanwhile fails on first use; one retry on a
# new connection is what urllib3 does for the same reason.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
          http.client.BadStatusLine)


@dataclass(frozen=True)
class AdminResponse:
    """One answer of the admin API."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class _CarriedConnection(http.client.HTTPConnection):
    """An HTTPConnection whose socket comes from a factory instead of a TCP connect."""

    def __init__(self, host: str, factory: Callable[[], Any], timeout: float | None):
        super().__init__(host, timeout=timeout)
        self._factory = factory

    def connect(self) -> None:
        self.sock = self._factory()


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
        self.bytes_fetched = 0  # total response body bytes, for benchmarks
        self._connect = connect
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

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

    # -- transport ------------------------------------------------------------------------

    def _json(self, method: str, path: str, params: dict,
              while_waiting: Callable[[], object] | None = None) -> Any:
        resp = self._request(method, path, params, while_waiting=while_waiting)
        try:
            # json.loads keeps integers exact (Python ints), unlike float-based parsers.
            return json.loads(resp.content)
        except ValueError as e:
            raise BadInputError(
                f"Envoy admin of {self.pod_ref} returned non-JSON for {path}"
                f" ({len(resp.content)} bytes)"
            ) from e

    def _request(self, method: str, path: str, params: dict,
                 ok: tuple[int, ...] = (200,), *,
                 while_waiting: Callable[[], object] | None = None) -> AdminResponse:
        """One request; `while_waiting()` runs (once) between sending it and reading the
        answer, in this thread: work that overlaps Envoy's, without a thread fighting the
        sender for the GIL."""
        target = path + ("?" + urlencode(params) if params else "")
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._conn or self._new_connection()
            self._conn = conn
            try:
                conn.request(method, target, headers=_HEADERS)
                if while_waiting is not None:
                    waiting, while_waiting = while_waiting, None
                    waiting()
                answer = conn.getresponse()
                resp = AdminResponse(answer.status, answer.read())
            except TimeoutError as e:
                self.close()
                raise UnreachableError(
                    f"Envoy admin of {self.pod_ref} did not answer {path} within "
                    f"{self.timeout:g}s",
                    hint="raise --request-timeout, or check the pod is not overloaded",
                ) from e
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if reused and attempt == 1 and isinstance(e, _STALE):
                    continue
                raise UnreachableError(
                    f"cannot connect to Envoy admin of {self.pod_ref} at {self.base_url}"
                    f" (connection refused or reset)",
                    hint="is the istio-proxy container running?",
                ) from e
            if answer.will_close:
                self.close()
            break
        self.bytes_fetched += len(resp.content)
        if resp.status_code not in ok:
            body = resp.text
            first = body.strip().splitlines()[0][:200] if body.strip() else ""
            raise AdminError(
                f"Envoy admin of {self.pod_ref} answered {resp.status_code} to {method} {path}"
                + (f": {first}" if first else ""),
                status=resp.status_code, body=body,
            )
        return resp

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._connect is not None:
            return _CarriedConnection("localhost", self._connect, self.timeout)
        parts = urlsplit(self.base_url)
        return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                          timeout=self.timeout)


def parse_loggers(text: str) -> dict[str, str]:
    """Envoy's `active loggers:` listing (`  name: level` lines) → {name: level}."""
    out = {}
    for line in text.splitlines():
        name, sep, lvl = line.strip().partition(":")
        if sep and lvl.strip() and name != "active loggers":
            out[name.strip()] = lvl.strip()
    return out
