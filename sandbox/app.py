"""The generic application every non-proxy container runs: an HTTP service on the pod's IP.

Latency and errors come from the environment (`SANDBOX_LATENCY`, e.g. `1s`/`250ms`,
`SANDBOX_ERROR_RATE` 0..1, `SANDBOX_ERROR_CODE`, default 500); `SANDBOX_STARTUP_DELAY` keeps
its ports closed that long after start, as an app that loads before it listens. Any path answers JSON naming
the pod, so a caller can tell which replica served it; `/bulk?bytes=N` streams N bytes.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import random
import signal
import socketserver
import sys
import threading
import time
import urllib.parse


def parse_duration(text: str | None) -> float:
    if not text:
        return 0.0
    text = text.strip()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


class AppServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """A threaded HTTP server for a sandbox app (this one, `sandbox.bookinfo`)."""
    daemon_threads = True
    allow_reuse_address = True


class LoggedHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with one access-log line a request on stdout, the container's log."""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stdout.write("%s - [%s] %s\n" % (self.client_address[0],
                                              time.strftime("%Y-%m-%dT%H:%M:%S"), fmt % args))
        sys.stdout.flush()


def serve_until_stopped(servers: list, banner: str) -> int:
    """Serve each of `servers` on a thread of its own, print `banner`, and stop them all on
    SIGTERM or SIGINT (as a container's process is stopped)."""
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(banner, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for s in servers:
        s.shutdown()
    return 0


def make_handler(pod: str, version: str, latency: float, error_rate: float, error_code: int):
    class Handler(LoggedHandler):
        server_version = "sandbox-app/1.0"

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body_in = self.rfile.read(length) if length else b""
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/bulk":
                n = int(urllib.parse.parse_qs(url.query).get("bytes", ["1048576"])[0])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(n))
                self.end_headers()
                chunk = b"x" * 65536
                while n > 0:
                    self.wfile.write(chunk[: min(n, len(chunk))])
                    n -= len(chunk)
                return
            if latency:
                time.sleep(latency)
            code = error_code if error_rate and random.random() < error_rate else 200
            if url.path in ("/healthz", "/ready"):
                code = 200
            payload = {"pod": pod, "version": version, "path": url.path, "method": self.command,
                       "host": self.headers.get("Host"), "received": len(body_in)}
            if url.path == "/items" and code == 200:
                payload["items"] = [{"id": i, "name": f"item-{i}", "price": 10 * i} for i in range(1, 4)]
            data = json.dumps(payload).encode() + b"\n"
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

    return Handler


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.app")
    p.add_argument("--listen", required=True)
    p.add_argument("--port", type=int, action="append", required=True)
    args = p.parse_args(argv)
    env = os.environ
    handler = make_handler(env.get("POD_NAME", "app"), env.get("SANDBOX_VERSION", ""),
                           parse_duration(env.get("SANDBOX_LATENCY")),
                           float(env.get("SANDBOX_ERROR_RATE") or 0),
                           int(env.get("SANDBOX_ERROR_CODE") or 500))
    time.sleep(parse_duration(env.get("SANDBOX_STARTUP_DELAY")))
    servers = [AppServer((args.listen, port), handler) for port in args.port]
    return serve_until_stopped(servers, f"listening on {args.listen} ports {args.port}")


if __name__ == "__main__":
    sys.exit(main())
