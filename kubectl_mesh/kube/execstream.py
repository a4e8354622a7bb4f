"""A lean exec/attach client over WebSocket (`v5.channel.k8s.io`, else `v4.channel.k8s.io`).

Channels (`kube.wsframes`): 0 stdin, 1 stdout, 2 stderr, 3 status (the exit `Status` JSON);
v5 closes stdin with `[255, 0]`. Output is handed to callbacks as it arrives, as views of
the frame reader's buffer, so a capture never holds more than one message in memory and no
byte is copied in Python (10-30 % less client CPU per captured MB than websocket-client's
`recv_data`: BENCHMARKS.md, sniff). Errors before the upgrade are translated once, here
(403 -> ForbiddenError, ...).

Where the API server refuses the WebSocket upgrade - a 403 included: from 1.35 the upgrade, a
GET, also needs `create`, and a Role with `create pods/exec` alone refuses it - or an HTTP
proxy strips it, `kubectl exec`/`kubectl attach` carry the stream instead (SPDY, a POST that
needs `create` only: `kube.kubectlexec`), as kubectl itself falls back, said once on stderr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence
from urllib.parse import urlencode

from kubectl_mesh.errors import MeshError
from kubectl_mesh.kube.api import pod_path, status_error, with_renewal
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.wsdial import (UpgradeRefused, WebSocketForbidden, WebSocketRefused,
                                      open_websocket, short_message)
from kubectl_mesh.kube.wsframes import V4_CHANNEL, V5_CHANNEL, ChannelReader, WebSocket

STDIN, STDOUT, STDERR, STATUS = 0, 1, 2, 3

OnData = Callable[[memoryview], None]  # valid only during the call: copy what you keep


@dataclass(frozen=True)
class ExitStatus:
    """How the remote command ended: exit code (None = unknown) and the Status message."""

    code: int | None
    message: str = ""
    reason: str = ""

    @classmethod
    def from_status(cls, raw: bytes) -> "ExitStatus":
        try:
            status = json.loads(raw)
        except ValueError:
            return cls(None, raw.decode(errors="replace"))
        if status.get("status") == "Success":
            return cls(0)
        causes = (status.get("details") or {}).get("causes") or []
        code = next((c.get("message") for c in causes if c.get("reason") == "ExitCode"), None)
        return cls(int(code) if code and str(code).isdigit() else None,
                   status.get("message", ""), status.get("reason", ""))


class ExecFailed(MeshError):
    """The container runtime could not start the command (e.g. executable not found)."""


class ExecStream:
    """One exec or attach connection. `run()` pumps output until the command ends."""

    def __init__(self, ws: WebSocket, what: str):
        self.ws = ws
        self.what = what  # "exec in pod x.ns container c", for messages
        self.protocol = ws.subprotocol or V4_CHANNEL
        self.status: ExitStatus | None = None

    def run(self, on_stdout: OnData, on_stderr: OnData) -> ExitStatus | None:
        """Deliver output until the status arrives or the connection ends (then None).

        The callbacks get memoryviews into the read buffer, valid during the call only.
        """
        channels = ChannelReader(self.ws)
        status = bytearray()
        while True:
            try:
                piece = channels.read()
            except (EOFError, OSError):  # the connection is gone (ProtocolError included)
                return self.status
            if piece is None:
                return self.status
            channel, payload = piece
            if channel == STDOUT and payload:
                on_stdout(payload)
            elif channel == STDERR and payload:
                on_stderr(payload)
            elif channel == STATUS:
                status += payload
                if channels.message_done:
                    self.status = ExitStatus.from_status(bytes(status))

    def send_stdin(self, data: bytes) -> None:
        self.ws.send_channel(STDIN, data)

    def close_stdin(self) -> None:
        """Stdin EOF (v5 only; with v4 the only way is closing the connection)."""
        try:
            self.ws.close_channel(STDIN)
        except OSError:
            pass

    def abort(self) -> None:
        """Wake a thread blocked in run() and end the connection (idempotent, any thread)."""
        self.ws.abort()

    def close(self) -> None:
        self.abort()
        self.ws.close()


class Notices(Protocol):
    def once(self, key: str, message: str) -> None: ...


def open_exec(config: ApiConfig, namespace: str, pod: str, command: Sequence[str], *,
              container: str | None = None, stdin: bool = False, timeout: float | None = 10.0,
              notices: Notices | None = None, kubectl: str | None = None):
    """Start `command` (an argv list, never a shell line) in a container of `pod`: an
    `ExecStream`, or a `KubectlStream` where the WebSocket is refused."""
    query: list[tuple[str, str]] = [("command", c) for c in command]
    what = f"exec in pod {pod}.{namespace}" + (f" container {container}" if container else "")
    try:
        return with_renewal(config, lambda: _open(config, namespace, pod, "exec", list(query),
                                                  container, stdin, timeout, what))
    except WebSocketRefused as refused:
        return _fallback(config, namespace, pod, "exec", command, container, timeout, what,
                         refused, notices, kubectl)


def open_attach(config: ApiConfig, namespace: str, pod: str, *, container: str,
                stdin: bool = True, timeout: float | None = 10.0,
                notices: Notices | None = None, kubectl: str | None = None):
    """Attach to a running container's main process (stdin only, unless asked otherwise)."""
    what = f"attach to pod {pod}.{namespace} container {container}"
    try:
        return with_renewal(config, lambda: _open(config, namespace, pod, "attach", [],
                                                  container, stdin, timeout, what,
                                                  stdout=False))
    except WebSocketRefused as refused:
        return _fallback(config, namespace, pod, "attach", (), container, timeout, what,
                         refused, notices, kubectl)


def _fallback(config: ApiConfig, namespace: str, pod: str, sub: str, command, container,
              timeout, what: str, refused: WebSocketRefused, notices: Notices | None,
              kubectl: str | None):
    """`kubectl exec`/`attach` (SPDY), said once; a 403 there too names both paths."""
    from kubectl_mesh.kube.kubectlexec import KubectlStream

    forbidden = refused.error if isinstance(refused, WebSocketForbidden) else None
    also = (f"the WebSocket path was refused too: ask for get and create on pods/{sub} in "
            f"namespace {namespace}") if forbidden is not None else ""
    stream = KubectlStream.start(config, namespace, pod, sub, command, container, timeout,
                                 what, kubectl=kubectl, why=str(refused), also=also)
    if sub == "attach":
        stream.wait_attached(timeout or None)
    if notices is not None:
        if forbidden is not None:
            notices.once("websocket-remotecommand",
                         f"note: RBAC refused the WebSocket pods/{sub} ({forbidden.message});"
                         " using kubectl exec/attach (SPDY), which needs only create")
        else:
            notices.once("websocket-remotecommand",
                         f"note: the API server refused the WebSocket pods/{sub} ({refused}); "
                         "using kubectl exec/attach (SPDY)")
    return stream


def _open(config: ApiConfig, namespace: str, pod: str, sub: str, query: list, container,
          stdin: bool, timeout, what: str, stdout: bool = True) -> ExecStream:
    if container:
        query.append(("container", container))
    query += [("stdin", str(stdin).lower()), ("stdout", str(stdout).lower()),
              ("stderr", str(stdout).lower()), ("tty", "false")]
    path = pod_path(namespace, pod, sub)
    try:
        ws = open_websocket(config, path, urlencode(query), [V5_CHANNEL, V4_CHANNEL],
                            timeout=timeout, tls=None, doing=f" for {what}")
    except UpgradeRefused as e:
        if e.status >= 500 and b"exec failed" in e.body:  # the runtime could not start it
            raise ExecFailed(short_message(e.body)) from e
        if e.status in (401, 404):
            raise status_error(e.status, e.body, "POST", path, config) from e
        # kubectl falls back to SPDY on any failed upgrade (client-go
        # tools/remotecommand/fallback.go, httpstream.IsUpgradeFailure), a 403 included;
        # 0 or 101: a proxy's answer, or not a subprotocol we offered
        if e.status == 403:
            raise WebSocketForbidden(status_error(403, e.body, "POST", path, config)) from e
        if e.status not in (0, 101):
            raise WebSocketRefused(str(e)) from e  # "HTTP 400: ..."
        raise WebSocketRefused(f"{what}: the WebSocket upgrade failed: {e}") from e
    ws.settimeout(None)  # a quiet capture may send nothing for a long time
    return ExecStream(ws, what)
