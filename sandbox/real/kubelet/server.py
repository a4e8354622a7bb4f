"""The kubelet API on the node's address, port 10250: HTTPS with a serving certificate from
the cluster CA; a client must show a certificate signed by that CA (the API server shows its
--kubelet-client-certificate).

What it serves, in the kubelet's paths (pkg/kubelet/server/server.go
`InstallDebuggingHandlers`): `GET /containerLogs/{ns}/{pod}/{container}` (follow, tailLines,
sinceSeconds, timestamps), `/exec/{ns}/{pod}/{container}` and `/attach/...` (query `command`,
`input`, `output`, `error`, `tty`, as pkg/registry/core/pod/strategy.go `streamParams` builds
them), `/portForward/{ns}/{pod}`, and `/healthz`. The streams are the sandbox's own
(`sandbox.streams`: SPDY/3.1, and WebSocket for clients that ask for it)."""

from __future__ import annotations

import collections
import http.server
import json
import urllib.parse

from ... import podio
from ...apiserver.server import ApiError, ChunkedResponses
from ...httpserver import BackgroundHTTPServer, server_context
from ...streams import StreamError

# the API server's names for the stream flags → the names sandbox.streams reads
STREAM_FLAGS = {"input": "stdin", "output": "stdout", "error": "stderr", "tty": "tty"}


class KubeletHandler(ChunkedResponses, http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "KubeletServer"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _text(self, code: int, text: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self._route()

    def do_POST(self):  # noqa: N802
        self._route()

    def _route(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        runtime = self.server.runtime
        try:
            if parts == ["healthz"]:
                return self._text(200, "ok")
            if parts[0] in ("containerLogs", "exec", "attach") and len(parts) == 4:
                sub = {"containerLogs": "log"}.get(parts[0], parts[0])
                ns, name, container = parts[1:]
                query["container"] = [container]
                if sub != "log":
                    query = _stream_query(query)
            elif parts[0] == "portForward" and len(parts) == 3:
                sub, (ns, name) = "portforward", parts[1:]
            else:
                return self._text(404, "404 page not found")
            obj = runtime.store.find("pods", ns, name)
            if obj is None:
                return self._text(404, f'pod "{name}" in namespace "{ns}" not found')
            pod = runtime.pod_processes(ns, name)
            if sub != "log":  # as the kubelet's servermetrics.IncWebSocketStreamingRequest
                transport = self.headers.get("Upgrade", "").split("/")[0].lower() or "none"
                self.server.streams[(sub, transport)] += 1
            podio.serve(runtime, self, obj, pod, sub, query)
        except ApiError as e:
            self._text(e.code, e.body.get("message", str(e)))
        except StreamError as e:
            self._text(e.code, json.dumps(e.status))
        except (OSError, ValueError):
            self.close_connection = True


def _stream_query(query: dict[str, list[str]]) -> dict[str, list[str]]:
    """The kubelet's stream flags (`input=1` …) as sandbox.streams names them; a flag the
    API server leaves out is false (pkg/kubelet/server/remotecommand options)."""
    out = {k: v for k, v in query.items() if k not in STREAM_FLAGS}
    for theirs, ours in STREAM_FLAGS.items():
        out[ours] = ["1" if query.get(theirs, ["0"])[-1] in ("1", "true") else "0"]
    return out


class KubeletServer(BackgroundHTTPServer):
    def __init__(self, address: str, port: int, runtime, *, ca_file: str, cert_file: str,
                 key_file: str):
        """TLS with the serving certificate; the API server must present its kubelet
        client certificate (from `ca_file`)."""
        super().__init__((address, port), KubeletHandler, name="kubelet-api",
                         tls=server_context(cert_file, key_file, client_ca=ca_file))
        self.runtime = runtime
        # stream requests by (subresource, transport: websocket or spdy)
        self.streams: collections.Counter = collections.Counter()
