"""Envoy admin API client (requests). Every error names the pod; transport errors are
translated once, here, into `UnreachableError` / `AdminError`."""

from __future__ import annotations

import json
from typing import Any

import requests

from kubectl_mesh.errors import AdminError, BadInputError, UnreachableError


class EnvoyAdmin:
    """Talks to one Envoy's admin port (`base_url` like `http://127.0.0.1:15000`)."""

    def __init__(self, base_url: str, pod_ref: str, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.pod_ref = pod_ref
        self.timeout = timeout
        self.bytes_fetched = 0  # total response body bytes, for benchmarks
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> EnvoyAdmin:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- endpoints ------------------------------------------------------------------------

    def config_dump(self, mask: str | None = None, resource: str | None = None,
                    name_regex: str | None = None, include_eds: bool = False) -> dict:
        """`/config_dump`; `mask` (comma-separated fields), `resource` (e.g.
        `dynamic_active_clusters`), `name_regex` (RE2 full match), `include_eds`."""
        params: dict[str, str] = {}
        if mask:
            params["mask"] = mask
        if resource:
            params["resource"] = resource
        if name_regex:
            params["name_regex"] = name_regex
        if include_eds:
            params["include_eds"] = "true"
        return self._json("GET", "/config_dump", params)

    def clusters(self) -> dict:
        """`/clusters?format=json` (host health and outlier state)."""
        return self._json("GET", "/clusters", {"format": "json"})

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

    def _json(self, method: str, path: str, params: dict) -> Any:
        resp = self._request(method, path, params)
        try:
            # json.loads keeps integers exact (Python ints), unlike float-based parsers.
            return json.loads(resp.content)
        except ValueError as e:
            raise BadInputError(
                f"Envoy admin of {self.pod_ref} returned non-JSON for {path}"
                f" ({len(resp.content)} bytes)"
            ) from e

    def _request(self, method: str, path: str, params: dict,
                 ok: tuple[int, ...] = (200,)) -> requests.Response:
        url = self.base_url + path
        try:
            resp = self._session.request(method, url, params=params, timeout=self.timeout)
        except requests.Timeout as e:
            raise UnreachableError(
                f"Envoy admin of {self.pod_ref} did not answer {path} within {self.timeout:g}s",
                hint="raise --request-timeout, or check the pod is not overloaded",
            ) from e
        except requests.ConnectionError as e:
            raise UnreachableError(
                f"cannot connect to Envoy admin of {self.pod_ref} at {self.base_url}"
                f" (connection refused or reset)",
                hint="is the istio-proxy container running?",
            ) from e
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


def parse_loggers(text: str) -> dict[str, str]:
    """Envoy's `active loggers:` listing (`  name: level` lines) → {name: level}."""
    out = {}
    for line in text.splitlines():
        name, sep, lvl = line.strip().partition(":")
        if sep and lvl.strip() and name != "active loggers":
            out[name.strip()] = lvl.strip()
    return out
