"""One pod's capture: pick a backend (auto: exec, then ephemeral), run tcpdump, clean up."""

from __future__ import annotations

import threading
from typing import Callable

from kubectl_mesh.capture.backends import (PROXY, EphemeralBackend, ExecBackend, LeftBehind,
                                           NodeBackend, capture_blocker)
from kubectl_mesh.capture.options import SniffOptions
from kubectl_mesh.capture.pcap import PcapHeader, PcapStreamReader, Record
from kubectl_mesh.capture.tcpdump import (TcpdumpStats, buffer_per_pod, diagnose, gated,
                                          tcpdump_argv)
from kubectl_mesh.errors import MeshError, ToolMissingError, UnreachableError, UsageError
from kubectl_mesh.kube.execstream import ExecFailed, open_exec

STOP_GRACE = 3.0  # seconds tcpdump gets to report and exit after we closed its stdin
OnHeader = Callable[["PodCapture", PcapHeader], None]
OnRecords = Callable[["PodCapture", list[Record]], None]


class PodCapture:
    """Setup / Start / Cleanup for one pod. `run()` blocks; `stop()` and `cleanup()` may be
    called from any thread, any number of times."""

    def __init__(self, api, pod, pod_json: dict, opts: SniffOptions,
                 on_header: OnHeader, on_records: OnRecords, *, notices=None):
        self.api, self.pod, self.pod_json, self.opts = api, pod, pod_json, opts
        self.notices = notices  # session.Notices: the exec/attach fallback is said once
        self.on_header, self.on_records = on_header, on_records
        self.key = f"{pod.name}.{pod.namespace}"
        self.reasons: list[str] = []  # why candidates were skipped (auto)
        self.backend = None
        self.stats = TcpdumpStats()
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self.left_behind: list[LeftBehind] = []  # what cleanup could not undo
        self.bytes_in = 0
        self._stderr = bytearray()
        self._lock = threading.Lock()
        self._stopped = False
        self._stream = None
        self._used: list = []

    # -- choosing -------------------------------------------------------------------------
    def candidates(self) -> list:
        opts, spec = self.opts, self.pod_json.get("spec") or {}
        containers = [c for c in spec.get("containers") or []]
        # Native sidecars: init containers that keep running (restartPolicy Always).
        containers += [c for c in spec.get("initContainers") or []
                       if c.get("restartPolicy") == "Always"]
        names = [c["name"] for c in containers]
        if opts.container and opts.container not in names:
            raise UsageError(f"pod {self.key} has no container {opts.container}",
                             hint=f"choose one of: {', '.join(names)}")
        ns, name = self.pod.namespace, self.pod.name
        target = opts.container or (PROXY if PROXY in names else names[0])
        if opts.mode == "ephemeral":
            return [EphemeralBackend(self.api, ns, name, target, notices=self.notices)]
        if opts.mode == "node":
            sandboxed = _sandboxed_runtime(spec)
            if sandboxed:
                raise UsageError(
                    f"pod {self.key} runs in runtime class {sandboxed}: a gVisor or Kata pod "
                    "has a network stack of its own that node mode cannot enter",
                    hint="use --mode ephemeral or --mode exec")
            return [NodeBackend(self.api, ns, name, self.pod_json, target,
                                notices=self.notices)]
        chosen = [c for c in containers if c["name"] == opts.container] if opts.container else \
            sorted(containers, key=lambda c: c["name"] == PROXY)  # app containers first
        execs = []
        for c in chosen:
            blocker = capture_blocker(c, spec)
            if blocker and opts.mode == "auto":
                self.reasons.append(f"container {c['name']} {blocker}, so tcpdump there cannot "
                                    "capture")
            else:
                execs.append(ExecBackend(self.api, ns, name, c["name"]))
        if opts.mode == "exec":
            return execs
        return execs + [EphemeralBackend(self.api, ns, name, target, notices=self.notices)]

    # -- running --------------------------------------------------------------------------
    def run(self) -> None:
        """Try the candidates in order until one captures; record the error otherwise."""
        try:
            backends = self.candidates()
            for i, backend in enumerate(backends):
                if self._is_stopped():
                    return
                with self._lock:
                    self._used.append(backend)
                try:
                    backend.setup(self.opts)
                    self._attempt(backend)
                    return
                except MeshError as e:
                    if self._is_stopped():
                        return
                    last = i == len(backends) - 1
                    if self.opts.mode != "auto" or last or isinstance(e, UsageError):
                        raise self._explain(e) from None
                    self.reasons.append(f"{backend.where}: {e}")
                    self._stderr.clear()
        except BaseException as e:  # noqa: BLE001 - reported by the runner, per pod
            self.error = e

    def _attempt(self, backend) -> None:
        """Run tcpdump via `backend` until it ends or is stopped; raise if it never captured."""
        argv = tcpdump_argv(self.opts.interface, self.opts.filter, self.opts.count,
                            buffer_bytes=self.opts.buffer_bytes or buffer_per_pod(1),
                            snaplen=self.opts.snaplen)
        pod_name, container, argv = backend.target(argv)
        reader = PcapStreamReader()
        try:
            stream = open_exec(self.api.config, self.pod.namespace, pod_name, gated(argv),
                               container=container, stdin=True, timeout=self.api.timeout,
                               notices=self.notices)
        except ExecFailed as e:
            raise self._failure(backend, None, e.message) from None
        with self._lock:
            self._stream, stopped = stream, self._stopped
            self.backend = backend
        if stopped:
            stream.close()
            return

        def on_stdout(data: bytes) -> None:
            self.bytes_in += len(data)
            had_header = reader.header is not None
            records = reader.feed(data)
            if not had_header and reader.header is not None:
                self.on_header(self, reader.header)
            if records:
                self.on_records(self, records)

        try:  # kubectl exec (the fallback) reports a refused or failed start here
            status = stream.run(on_stdout, self._stderr.extend)
        except ExecFailed as e:
            raise self._failure(backend, None, e.message) from None
        finally:
            stream.close()
        self.stats = TcpdumpStats.parse(bytes(self._stderr))
        self.exit_code = status.code if status else None
        if self._is_stopped():
            return
        if reader.header is None:
            raise self._failure(backend, status)
        if status is None:  # no exit status: the connection ended under a running tcpdump
            raise UnreachableError(
                f"{self.key}: the connection to the API server ({stream.what}) was lost "
                "mid-capture; the capture is cut short, and the output holds the packets "
                "received until then", hint="check the API server, then capture again")
        if status.code:  # tcpdump (or its container) ended before we stopped it
            raise MeshError(f"{self.key}: tcpdump ended early in {backend.where} (exit "
                            f"{status.code}{': ' + status.message if status.message else ''})"
                            "; the capture is cut short, and the output holds the packets "
                            "received until then")

    def _failure(self, backend, status, refused: str = "") -> MeshError:
        said = diagnose(bytes(self._stderr))
        message = refused or (status.message if status else "") or said or \
            "tcpdump ended without output"
        where = f"{self.key} {backend.where}"
        if 'exec: "sh"' in message:
            return ToolMissingError(f"{where} has no sh, which runs tcpdump so that it stops "
                                    "when the capture ends",
                                    hint="use --mode ephemeral (an image with sh and tcpdump)")
        if status and status.code in (126, 127) or "executable file not found" in message:
            return ToolMissingError(f"tcpdump is not available in {where}",
                                    hint="use --mode ephemeral (an image with tcpdump), or -c "
                                         "a container that ships it")
        if "permission to perform this capture" in said or "Operation not permitted" in said:
            return MeshError(f"tcpdump in {where} may not capture: {said}",
                             hint="that container lacks NET_RAW (istio-proxy drops all "
                                  "capabilities); use --mode ephemeral")
        if "syntax error" in said or "can't parse filter" in said:
            return UsageError(f"tcpdump rejected the filter {self.opts.filter!r}: {said}")
        if "No such device" in said:
            return UsageError(f"{where} has no interface {self.opts.interface}: {said}")
        return MeshError(f"tcpdump failed in {where}: {said or message}")

    def _explain(self, error: MeshError) -> MeshError:
        """The final error, with the reasons auto mode gathered on the way."""
        if not self.reasons:
            return error
        error.message = f"{error.message} (tried before: {'; '.join(self.reasons)})"
        return error

    # -- stopping -------------------------------------------------------------------------
    def _is_stopped(self) -> bool:
        with self._lock:
            return self._stopped

    def stop(self) -> None:
        """Ask tcpdump to finish (stdin EOF → the gate's SIGTERM: it reports its counts), and
        cut the connection if it has not ended within STOP_GRACE."""
        with self._lock:
            first = not self._stopped
            self._stopped = True
            stream = self._stream
        if stream is None:
            return
        if not first:
            stream.abort()
            return
        stream.close_stdin()
        timer = threading.Timer(STOP_GRACE, stream.abort)
        timer.daemon = True
        timer.start()

    def cleanup(self) -> list[str]:
        """Undo every backend's setup (idempotent); notes for the user."""
        self.stop()
        with self._lock:
            used, self._used = self._used, []
        notes = []
        for backend in used:
            try:
                notes += backend.cleanup()
            except LeftBehind as e:
                self.left_behind.append(e)
            except MeshError as e:
                notes.append(f"cleanup of {backend.where} failed: {e}")
        return notes

    @property
    def stderr_text(self) -> str:
        return bytes(self._stderr).decode(errors="replace")


def _sandboxed_runtime(pod_spec: dict) -> str | None:
    """The pod's runtime class when it names a VM or user-space kernel sandbox (gVisor's
    runsc, Kata), whose network namespace is not the node's to enter."""
    name = pod_spec.get("runtimeClassName") or ""
    return name if any(k in name.lower() for k in ("gvisor", "runsc", "kata")) else None
