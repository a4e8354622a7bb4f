"""The fallback port-forward: a `kubectl port-forward` subprocess on 127.0.0.1.

Used when the API server refuses the WebSocket port-forward (older or proxied API servers
that speak only SPDY). kubectl picks the local port; we read it from its stdout, keep draining
stdout (it prints a line per connection and would block on a full pipe), and end it on close.

kubectl must not outlive us, however we end: it runs behind the stdin gate
(`kubectl_mesh.stdingate`), whose stdin is a pipe only we hold, in a session of its own. When
we close the pipe - on close(), or because we died, even by `kill -9` - the gate sends kubectl
SIGTERM. (A parent-death signal, PR_SET_PDEATHSIG, fires when the *thread* that started the
child ends, and forwards are opened in pool threads that end long before the forward does.)
A closed terminal's SIGHUP reaches only us, and we clean up.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from kubectl_mesh.errors import (ForbiddenError, NotFoundError, ToolMissingError,
                                 UnreachableError)
from kubectl_mesh.kube.api import status_error
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.kubectlexec import kubectl_command
from kubectl_mesh.stdingate import gated

_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")
_STOP_GRACE = 3.0
_SH = "/bin/sh"


class KubectlForward:
    via = "kubectl"

    def __init__(self, config: ApiConfig, namespace: str, name: str, port: int,
                 timeout: float | None, *, kubectl: str | None = None, why: str = ""):
        self.config, self.namespace, self.name, self.port = config, namespace, name, port
        self.timeout = timeout
        self.kubectl = kubectl
        self.why = why
        self.local_port = 0
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._drain: threading.Thread | None = None

    def command(self, kubectl: str) -> tuple[list[str], dict[str, str]]:
        """The argv and environment that reach the same cluster as `config`."""
        cmd, env = kubectl_command(self.config, kubectl, self.timeout)
        cmd += ["port-forward", "--address", "127.0.0.1", f"pod/{self.name}", f":{self.port}",
                "-n", self.namespace]
        return cmd, env

    def start(self) -> None:
        kubectl = self.kubectl or shutil.which("kubectl")
        if not kubectl:
            raise ToolMissingError(
                f"cannot port-forward to pod {self.name}.{self.namespace}: the API server "
                f"{self.config.server} refused the WebSocket port-forward ({self.why}) and "
                "kubectl, the fallback, is not on PATH", hint="install kubectl")
        cmd, env = self.command(kubectl)
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(gated(cmd, _SH), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=self._stderr, env=env,
                                          start_new_session=True)
        except OSError as e:
            raise ToolMissingError(f"cannot run {kubectl}: {e.strerror}",
                                   hint="install kubectl") from e
        self._drain = threading.Thread(target=self._read_stdout, daemon=True,
                                       name="kubectl-mesh-pf-kubectl")
        self._drain.start()
        deadline = None if not self.timeout else time.monotonic() + self.timeout
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                line = self._lines.get(timeout=wait)
            except queue.Empty:
                raise UnreachableError(
                    f"kubectl port-forward to pod {self.name}.{self.namespace} did not start "
                    f"within {self.timeout}s", hint="retry, or raise --request-timeout") from None
            if line is None:  # kubectl exited before forwarding
                self._proc.wait()
                raise self._failure()
            match = _FORWARDING.search(line)
            if match:
                self.local_port = int(match[1])
                return

    def _read_stdout(self) -> None:
        try:
            for raw in self._proc.stdout:
                if not self.local_port:
                    self._lines.put(raw.decode(errors="replace"))
        finally:
            self._lines.put(None)

    def _failure(self):
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        last = text.splitlines()[-1] if text else f"exit status {self._proc.returncode}"
        last = re.sub(r"^error: ", "", last)
        who = f"pod {self.name}.{self.namespace}"
        if "is forbidden" in last:
            return status_error(403, b'{"kind":"Status","message":%s}' % _json(last),
                                "POST", f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"
                                        "/portforward", self.config)
        if "Unauthorized" in last or "provide credentials" in last:
            return ForbiddenError(f"the server {self.config.where} rejected our credentials "
                                  "(401)", hint=f"check the kubeconfig's user {self.config.user!r}")
        if "not found" in last.lower():
            return NotFoundError(f"kubectl port-forward to {who}: {last}")
        return UnreachableError(f"kubectl port-forward to {who} failed: {last}")

    def errors(self) -> list[str]:
        return []

    def close(self) -> None:
        """End kubectl through its gate (kill both after a grace period), reap the reader."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the gate sends kubectl SIGTERM and exits with it
            try:
                proc.wait(_STOP_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the gate's session: kubectl too
                proc.wait()
            if self._drain is not None:
                self._drain.join()
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def _json(text: str) -> bytes:
    import json

    return json.dumps(text).encode()
