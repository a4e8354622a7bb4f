"""The fallback exec and attach: `kubectl exec -i` / `kubectl attach -i` subprocesses.

Used when the API server refuses the WebSocket exec or attach (`execstream`): from 1.35 a
WebSocket upgrade, a GET, is authorized as `get` and `create`, so a Role with `create
pods/exec` alone refuses it, and an HTTP proxy may strip the upgrade. kubectl falls back to
SPDY, a POST authorized as `create` only (client-go tools/remotecommand/fallback.go,
`NewFallbackExecutor` with `httpstream.IsUpgradeFailure`), so the user's rights decide.

`KubectlStream` offers what `execstream.ExecStream` offers: output to callbacks as it comes,
stdin, stdin EOF, abort. kubectl runs in a session of its own (a Ctrl-C on the terminal reaches
us, and we stop the remote command in order); it cannot outlive us: when we die, its stdin
pipe closes, kubectl closes the remote stdin, and the stdin gate there ends the command.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
from typing import Sequence

from kubectl_mesh.errors import ForbiddenError, MeshError, NotFoundError, ToolMissingError, \
    UnreachableError
from kubectl_mesh.kube.api import status_error
from kubectl_mesh.kube.kubeconfig import ApiConfig

_EXIT = re.compile(rb"command terminated with exit code (\d+)\s*$")
_KLOG = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ ")  # kubectl -v's log lines
ATTACHED = b"101 Switching Protocols"  # kubectl -v=6: the upgrade was accepted
READ = 1 << 16
STOP_GRACE = 3.0


def kubectl_command(config: ApiConfig, kubectl: str, timeout: float | None
                    ) -> tuple[list[str], dict[str, str]]:
    """kubectl's argv prefix and environment that reach the same cluster, as the same user, as
    `config` (kubeconfig files, context, impersonation, request timeout)."""
    from kubectl_mesh.kube.kubeconfig import IN_CLUSTER

    cmd = [kubectl]
    env = dict(os.environ)
    if config.context != IN_CLUSTER:
        if len(config.kubeconfig_paths) == 1:
            cmd += ["--kubeconfig", config.kubeconfig_paths[0]]
        else:  # kubectl's --kubeconfig takes one file; a merged list goes via KUBECONFIG
            env["KUBECONFIG"] = os.pathsep.join(config.kubeconfig_paths)
        cmd += ["--context", config.context]
    if config.as_user:
        cmd += [f"--as={config.as_user}"]
    cmd += [f"--as-group={group}" for group in config.as_groups]
    if config.as_uid:
        cmd += [f"--as-uid={config.as_uid}"]
    if timeout:
        cmd += [f"--request-timeout={timeout}s"]
    return cmd, env


class KubectlStream:
    """One `kubectl exec -i` or `kubectl attach -i`; `run()` pumps output until it ends."""

    protocol = "kubectl"

    def __init__(self, proc: subprocess.Popen, what: str, config: ApiConfig, path: str,
                 also: str = ""):
        self.proc, self.what, self.config, self.path = proc, what, config, path
        self.also = also  # said with a 403: why the WebSocket path was no way either
        self.status = None
        self._stdin_lock = threading.Lock()
        self._err = bytearray()  # kubectl's own lines (and, for exec, the command's stderr)

    @classmethod
    def start(cls, config: ApiConfig, namespace: str, pod: str, sub: str,
              command: Sequence[str], container: str | None, timeout: float | None,
              what: str, kubectl: str | None = None, why: str = "", also: str = ""
              ) -> "KubectlStream":
        binary = kubectl or shutil.which("kubectl")
        if not binary:
            raise ToolMissingError(f"{what}: the API server {config.where} refused the WebSocket "
                                   f"({why}) and kubectl, the fallback, is not on PATH",
                                   hint="install kubectl")
        cmd, env = kubectl_command(config, binary, timeout)
        if sub == "attach":  # -v=6 logs the upgrade's answer: how we know it is attached
            cmd += ["-v=6", "attach", "-i", "-q", pod, "-n", namespace]
        else:
            cmd += ["exec", "-i", pod, "-n", namespace]
        if container:
            cmd += ["-c", container]
        if sub == "exec":
            cmd += ["--", *command]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as e:
            raise ToolMissingError(f"cannot run {binary}: {e.strerror}",
                                   hint="install kubectl") from e
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/{sub}"
        return cls(proc, what, config, path, also)

    # -- output -----------------------------------------------------------------------------
    def run(self, on_stdout, on_stderr):
        """Deliver output until kubectl ends; the command's exit status (None when the
        connection ended under it). kubectl's own failures raise as the WebSocket's would."""
        from kubectl_mesh.kube.execstream import ExitStatus as Status

        def pump_stderr() -> None:
            for line in iter(self.proc.stderr.readline, b""):
                if _KLOG.match(line):
                    continue
                self._err += line
                if not _EXIT.search(line) and not line.startswith((b"error: ", b"Error from")):
                    on_stderr(memoryview(line))

        err_thread = threading.Thread(target=pump_stderr, daemon=True, name="kubectl-stderr")
        err_thread.start()
        out = self.proc.stdout
        while True:
            data = out.read1(READ) if hasattr(out, "read1") else os.read(out.fileno(), READ)
            if not data:
                break
            on_stdout(memoryview(data))
        code = self.proc.wait()
        err_thread.join()
        text = bytes(self._err)
        if code == 0:
            self.status = Status(0)
            return self.status
        said = _EXIT.search(text.strip())
        if said:
            self.status = Status(int(said[1]), text.decode(errors="replace").strip())
            return self.status
        if code < 0:  # we ended kubectl (abort): the connection ended under the command
            return None
        raise self.failure(text.decode(errors="replace").strip(), code)

    def failure(self, text: str, code: int) -> MeshError:
        """kubectl's own error (it printed no exit code of the command) as a MeshError."""
        from kubectl_mesh.kube.execstream import ExecFailed

        last = text.splitlines()[-1] if text else f"kubectl exit status {code}"
        last = re.sub(r"^(error: |Error from server \(\w+\): )", "", last)
        if "is forbidden" in last:
            error = status_error(403, b'{"kind":"Status","message":%s}' % _json(last), "POST",
                                 self.path, self.config)
            if self.also:
                error.hint = f"{error.hint}; {self.also}" if error.hint else self.also
            return error
        if "Unauthorized" in last or "provide credentials" in last:
            return ForbiddenError(f"the server {self.config.where} rejected our credentials "
                                  "(401)", hint=f"check the kubeconfig's user {self.config.user!r}")
        if "executable file not found" in last or "exec failed" in last or "no such file" in last:
            return ExecFailed(last)
        if "not found" in last.lower():
            return NotFoundError(f"{self.what}: {last}")
        return UnreachableError(f"kubectl {self.what} failed: {last}")

    def wait_attached(self, timeout: float | None) -> None:
        """For attach: return once kubectl's upgrade was accepted; raise if kubectl ended."""
        found = threading.Event()
        lines: list[bytes] = []

        def read() -> None:
            for line in iter(self.proc.stderr.readline, b""):
                lines.append(line)
                if ATTACHED in line:
                    found.set()
                    break
            found.set()

        reader = threading.Thread(target=read, daemon=True, name="kubectl-attach")
        reader.start()
        if not found.wait(timeout):
            self.abort()
            self.close()
            raise UnreachableError(f"kubectl {self.what} did not attach within {timeout}s",
                                   hint="retry, or raise --request-timeout")
        if not any(ATTACHED in line for line in lines):
            code = self.proc.wait()
            self.close()
            text = b"".join(l for l in lines if not _KLOG.match(l)).decode(errors="replace")
            raise self.failure(text.strip(), code)
        # run() reads kubectl's later lines, so it never blocks on a full pipe

    # -- input and ending -------------------------------------------------------------------
    def send_stdin(self, data: bytes) -> None:
        with self._stdin_lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def close_stdin(self) -> None:
        """Stdin EOF: kubectl closes the remote stdin (the stdin gate ends the command)."""
        with self._stdin_lock, contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()

    def abort(self) -> None:
        """End kubectl at once (any thread, idempotent): the remote stdin closes with it."""
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGTERM)

    def close(self) -> None:
        self.close_stdin()
        try:
            self.proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.close()


def _json(text: str) -> bytes:
    import json

    return json.dumps(text).encode()
