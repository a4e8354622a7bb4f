"""The node's client of the real API server: JSON over HTTPS, authenticated by the node's
client certificate (`system:node:<name>` in `system:nodes`), one connection per request."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse

from ...apiserver import pki


class ApiStatus(Exception):
    """A non-2xx answer: `code` and the Status body's message."""

    def __init__(self, code: int, body: dict):
        super().__init__(f"{code}: {body.get('message', body)}")
        self.code = code
        self.body = body


class NodeClient:
    def __init__(self, server: str, ca: pki.Pair, identity: pki.Pair):
        url = urllib.parse.urlsplit(server)
        self.host, self.port = url.hostname, url.port or 443
        self._context = ssl.create_default_context(cafile=str(ca.cert))
        self._context.load_cert_chain(str(identity.cert), str(identity.key))

    def _connect(self, timeout: float | None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self._context,
                                           timeout=timeout)

    def request(self, method: str, path: str, body: dict | None = None, *,
                content_type: str = "application/json") -> dict:
        """One request; the decoded body, or ApiStatus for a non-2xx answer."""
        conn = self._connect(30)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={
                "Content-Type": content_type, "Accept": "application/json",
                "User-Agent": "kubelet/v1.37.2 (linux/amd64) kubectl-mesh-sandbox"})
            r = conn.getresponse()
            decoded = json.loads(r.read() or b"{}")
        finally:
            conn.close()
        if r.status >= 300:
            raise ApiStatus(r.status, decoded)
        return decoded

    def watch(self, path: str, timeout: float = 300):
        """Yield the watch events of `path` (which carries `watch=1`) until the server ends
        the stream; `(connection, iterator)` so the caller can close it from elsewhere."""
        conn = self._connect(timeout)
        conn.request("GET", path, headers={"Accept": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            body = r.read()
            conn.close()
            raise ApiStatus(r.status, json.loads(body or b"{}"))

        def events():
            try:
                while True:
                    line = r.readline()
                    if not line:
                        return
                    if line.strip():
                        yield json.loads(line)
            finally:
                conn.close()
        return conn, events()
