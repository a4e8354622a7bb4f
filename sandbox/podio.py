"""Serving a running pod's subresources: logs, exec, attach and port-forward.

The upgrade protocols (WebSocket channels, SPDY/3.1) live in `sandbox.streams`; this module
answers the pod-level questions: which container, which process, is the pod running.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess

from .apiserver.server import ApiError
from .containerlog import serve_log
from . import tools
from .runtime import preexec


def _one(query: dict, name: str, default=None):
    values = query.get(name)
    return values[-1] if values else default


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _container(obj: dict, pod, query: dict, *, allow_ephemeral: bool = True):
    """The container the request names (default: the first one), like the kubelet picks it."""
    name = _one(query, "container")
    spec = obj.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    eph = [c["name"] for c in spec.get("ephemeralContainers") or []] if allow_ephemeral else []
    pod_name = obj["metadata"]["name"]
    if not name:
        if len(names) > 1:  # kubectl picks a default itself; the kubelet insists on a name
            raise _bad_request(f"a container name must be specified for pod {pod_name}, "
                               f"choose one of: [{' '.join(names)}]")
        name = names[0] if names else None
    if name not in names + inits + eph:
        raise _bad_request(f"container {name} is not valid for pod {pod_name}")
    return name


def _require_running(obj: dict, pod) -> None:
    phase = (obj.get("status") or {}).get("phase")
    if pod is None or phase != "Running":
        raise _bad_request(f"pod {obj['metadata']['name']} is not running (phase {phase or 'Pending'}); "
                           "cannot attach to a container in a completed pod" if phase in ("Succeeded", "Failed")
                           else f"unable to upgrade connection: pod {obj['metadata']['name']} is not running")


def serve(runtime, handler, obj: dict, pod, sub: str, query: dict) -> None:
    if sub == "log":
        return _serve_log(runtime, handler, obj, pod, query)
    _require_running(obj, pod)
    from . import streams
    allow_ws = runtime.allow_websocket()
    if sub == "portforward":
        def connect(port: int) -> socket.socket:
            # in the pod's network namespace when it has one (sandbox.network.PodAddress)
            return pod.address.dial(port, 5)
        api = getattr(handler.server, "api", None)  # the double's modelled round trip
        return streams.serve_portforward(handler, query, connect, allow_websocket=allow_ws,
                                         delay_line=api.latency.delay_line if api else None)
    name = _container(obj, pod, query)
    container = pod.containers.get(name)
    if sub == "exec":
        def spawn(command, _container_name, stdin, tty):
            if not command:
                raise streams.StreamError(_status(400, "you must specify at least one command for the container"))
            env = dict(pod.env)
            for e in (container.spec.get("env") or []) if container else []:
                if "value" in e:
                    env[e["name"]] = str(e["value"])
            if container:  # sniff: shim PATH + container facts (sandbox/tools/__init__.py)
                env = tools.container_env(env, obj, container.spec, ephemeral=container.ephemeral)
            try:
                tools.check_command(command, env)  # a tool the image does not ship: not found
                scope = container.scope if container else None
                with contextlib.ExitStack() as spawn_scope:
                    # in the container's cgroup and the pod's network namespace, like a
                    # runtime's exec (see Runtime._launch)
                    try:
                        join = spawn_scope.enter_context(scope.joining()) if scope else None
                    except FileNotFoundError:  # the container stopped meanwhile
                        raise streams.StreamError(_status(
                            400, f"container {name} is not running")) from None
                    proc = subprocess.Popen(
                        command, cwd=container.directory if container else None, env=env,
                        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT if tty else subprocess.PIPE,
                        start_new_session=True, preexec_fn=preexec(join, pod.address.enter))
                if container is not None:  # ended with the container, not with the client
                    container.execs[:] = [p for p in container.execs if p.poll() is None]
                    container.execs.append(proc)
                return proc
            except FileNotFoundError:
                raise streams.StreamError(_exec_failed(
                    f'exec: "{command[0]}": executable file not found in $PATH', 127)) from None
            except PermissionError:
                raise streams.StreamError(_exec_failed(
                    f'exec: "{command[0]}": permission denied', 126)) from None
        return streams.serve_exec(handler, query, spawn, allow_websocket=allow_ws)
    if sub == "attach":
        def attach(_name, stdin, tty):
            if container is None or container.process is None or container.process.poll() is not None:
                raise streams.StreamError(_status(400, f"container {name} is not running"))
            return Attached(container, stdin)
        return streams.serve_attach(handler, query, attach, allow_websocket=allow_ws)


def _status(code: int, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "BadRequest", "code": code}


def _exec_failed(message: str, exit_code: int) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: OCI runtime exec failed: "
                       f"exec failed: unable to start container process: {message}: unknown",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}}


class Attached:
    """A view of a running container's stdio for `attach`: output copied into fresh pipes."""

    def __init__(self, container, want_stdin: bool):
        self._container = container
        self.stdin = container.process.stdin if want_stdin else None
        out_r, self._out_w = os.pipe()
        err_r, self._err_w = os.pipe()
        self.stdout = os.fdopen(out_r, "rb", buffering=0)
        self.stderr = os.fdopen(err_r, "rb", buffering=0)
        container.log.subscribe(self._copy)
        import threading
        threading.Thread(target=self._close_on_exit, daemon=True).start()

    def _copy(self, stream: str, data: bytes) -> None:
        try:
            os.write(self._out_w if stream == "stdout" else self._err_w, data)
        except OSError:
            pass

    def _close_on_exit(self) -> None:
        self._container.process.wait()
        import time
        time.sleep(0.2)  # let the log pump deliver the last lines
        self._container.log.unsubscribe(self._copy)
        for fd in (self._out_w, self._err_w):
            try:
                os.close(fd)
            except OSError:
                pass

    @property
    def returncode(self):
        return self._container.process.returncode

    def poll(self):
        return self._container.process.poll()

    def wait(self, timeout=None):
        return self._container.process.wait(timeout)

    def kill(self):
        pass  # detaching does not stop the container


def _serve_log(runtime, handler, obj: dict, pod, query: dict) -> None:
    name = _container(obj, pod, query)
    path = runtime.state_dir / "pods" / obj["metadata"]["namespace"] / obj["metadata"]["name"] / f"{name}.log"
    if pod is None and not path.exists():
        raise _bad_request(f'container "{name}" in pod "{obj["metadata"]["name"]}" is waiting to start: ContainerCreating')
    c = pod.containers.get(name) if pod is not None else None
    if c is not None and c.process is None and c.exit_code is None:
        raise _bad_request(_waiting_to_start(name, obj["metadata"]["name"], c, pod))
    follow = (_one(query, "follow", "false").lower() in ("1", "t", "true"))
    since = _log_option(obj, query, "sinceSeconds", 1, "must be greater than 0")
    tail = _log_option(obj, query, "tailLines", 0, "must be greater than or equal to 0")
    stamps = _one(query, "timestamps", "false").lower() in ("1", "t", "true")
    handler.start_chunked("text/plain")
    uid = obj["metadata"]["uid"]
    alive = lambda: (runtime.store.find("pods", obj["metadata"]["namespace"], obj["metadata"]["name"]) or {}).get("metadata", {}).get("uid") == uid  # noqa: E731
    try:
        serve_log(handler.write_chunk, path, follow=follow, since_seconds=since,
                  tail_lines=tail, timestamps=stamps, alive=alive)
    finally:
        try:
            handler.end_chunked()
        except OSError:
            pass


def _waiting_to_start(name: str, pod_name: str, c, pod) -> str:
    """Why a container that never ran has no log, in the kubelet's words
    (pkg/kubelet/kubelet_pods.go `validateContainerLogStatus`)."""
    reason = c.waiting[0] if c.waiting else ("ContainerCreating" if pod.initialized
                                             else "PodInitializing")
    why = {"ErrImagePull": "image can't be pulled",
           "ImagePullBackOff": "trying and failing to pull image"}.get(reason, reason)
    return f'container "{name}" in pod "{pod_name}" is waiting to start: {why}'


def _log_option(obj: dict, query: dict, name: str, minimum: int, must: str) -> int | None:
    """An integer PodLogOptions field, checked before the stream starts as the real server
    does: not an integer is a 400 (decoding the query), below `minimum` a 422
    (pkg/apis/core/validation ValidatePodLogOptions, from pkg/registry/core/pod/rest/log.go)."""
    raw = _one(query, name)
    if raw is None:
        return None
    try:
        value = int(raw, 10)
    except ValueError:
        raise _bad_request(f'{name}: strconv.ParseInt: parsing "{raw}": invalid syntax') from None
    if value < minimum:
        pod = obj["metadata"]["name"]
        raise ApiError(422, "Invalid", f'PodLogOptions "{pod}" is invalid: {name}: Invalid '
                       f"value: {value}: {must}", {"name": pod, "kind": "PodLogOptions"})
    return value
