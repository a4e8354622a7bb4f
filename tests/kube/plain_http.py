"""A plain-HTTP listener on 127.0.0.1 that records what arrives (path, Authorization header),
answering every request with a Kubernetes 404 Status; and a kubeconfig pointing at anything,
and a runner for the real `kubectl-mesh-*` executables."""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading
from dataclasses import dataclass

import yaml

BIN = pathlib.Path(sys.executable).parent
SECRET = "s3cr3t-T0KEN-value"


class RecordingServer:
    """`with RecordingServer() as server:` - `server.url`, `server.requests` [(path, auth)]."""

    def __init__(self):
        self.requests: list[tuple[str, str | None]] = []
        recorded = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                recorded.append((self.path, self.headers.get("Authorization")))
                body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "reason": "NotFound", "code": 404,
                                   "message": "not here"}).encode()
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def write_kubeconfig(path: pathlib.Path, *, server=None, user=None, cluster=None,
                     context=None, doc=None) -> pathlib.Path:
    """A one-context kubeconfig (cluster "c", user "alice", context "x"), or `doc` as is."""
    if doc is None:
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": "x",
               "clusters": [{"name": "c", "cluster": cluster or {"server": server}}],
               "users": [{"name": "alice", "user": user if user is not None else {}}],
               "contexts": [{"name": "x", "context": context or {"cluster": "c",
                                                                 "user": "alice"}}]}
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def both(self) -> str:
        return self.stdout + self.stderr


def mesh(command: str, *args: str, home: pathlib.Path, timeout: float = 60) -> Result:
    """Run `kubectl-mesh-COMMAND ARGS` (the installed executable) with a clean environment."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBECONFIG", "KUBECTL_MESH_DEBUG") and not k.lower().endswith("_proxy")}
    env["HOME"] = str(home)
    proc = subprocess.run([str(BIN / f"kubectl-mesh-{command}"), *args], capture_output=True,
                          text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    return Result(proc.returncode, proc.stdout, proc.stderr)
