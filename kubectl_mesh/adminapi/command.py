"""`kubectl mesh admin TARGET PATH`: one request to the Envoy admin API of a proxy (or of every
pod of a workload), its answer streamed to stdout.

Reads are GETs. An endpoint that changes the proxy (`endpoints.WRITES`) needs `--allow-write`,
is POSTed, and is said on stderr first; for a workload of several pods it needs `--all-pods`
too, and every pod is reached before any of them is changed. An answer other than 200 is a
one-line error with Envoy's text: 404 (no such endpoint or resource) exits 3, 400 and 405
(bad parameter, method) exit 2, anything else 5.
"""

from __future__ import annotations

from typing import IO

from kubectl_mesh.adminapi.endpoints import AdminPath
from kubectl_mesh.adminapi.options import AdminOptions
from kubectl_mesh.errors import AdminError, ExitCode, MeshError, UsageError


class EnvoyRefused(MeshError):
    """Envoy answered the request with a status other than 200."""

    def __init__(self, error: AdminError, hint: str | None = None):
        super().__init__(error.message, hint or error.hint)
        self.status = error.status
        self.exit_code = _exit_code(error.status)


def _exit_code(status: int) -> ExitCode:
    if status == 404:
        return ExitCode.NOT_FOUND
    if status in (400, 405):
        return ExitCode.USAGE
    return ExitCode.UNREACHABLE


def run(opts: AdminOptions, stdout: IO[str], stderr: IO[str]) -> int:
    from kubectl_mesh.session import Session, pick_one

    path = opts.path
    if path.writes and not opts.allow_write:
        raise UsageError(f"{path.path} changes the proxy ({path.what()}); nothing was sent",
                         hint="add --allow-write to POST it")
    method = path.method(opts.allow_write)
    what = opts.target or f"-l {opts.selector}"
    terminal = opts.terminal if opts.terminal is not None else _isatty(stdout)
    with Session.open(opts.cluster, stderr) as session:
        pods = session.proxies(opts.target, opts.selector, stderr=stderr)
        if len(pods) > 1 and not opts.all_pods:
            if method == "POST":
                raise UsageError(
                    f"{what} has {len(pods)} pods: {method} {path.path} would change only one; "
                    "nothing was sent",
                    hint="add --all-pods to send it to every pod, or name one pod")
            pods = [pick_one(pods, what, stderr, others="--all-pods prints every pod's answer")]
        if method == "POST":
            return _write(session, pods, path, stdout, stderr, terminal)
        for pod in pods:
            if len(pods) > 1:
                _header(pod, stdout, first=pod is pods[0])
            with session.admin(pod) as admin:
                _fetch(admin, method, path, stdout, terminal)
    return ExitCode.OK


def _write(session, pods, path: AdminPath, stdout, stderr, terminal: bool) -> int:
    """POST to every pod, each reached (its admin port answering /ready) before any is
    changed; a failure part-way says which pods were changed."""
    import contextlib

    refs = ", ".join(p.ref for p in pods)
    with contextlib.ExitStack() as stack:
        admins = []
        for pod in pods:
            admin = stack.enter_context(session.admin(pod))
            admin.ready()  # raises when the pod's Envoy cannot be reached: nothing changed yet
            admins.append((pod, admin))
        print(f"POST {path.target} to {refs}: {path.what()}", file=stderr, flush=True)
        done: list[str] = []
        for pod, admin in admins:
            if len(pods) > 1:
                _header(pod, stdout, first=not done)
            try:
                _fetch(admin, "POST", path, stdout, terminal)
            except MeshError as e:
                if done:
                    e.message = f"{e.message}; already sent to {', '.join(done)}"
                raise
            done.append(pod.ref)
    return ExitCode.OK


def _fetch(admin, method: str, path: AdminPath, stdout: IO[str], terminal: bool) -> None:
    from kubectl_mesh.adminapi import render

    try:
        with admin.stream(method, path.target) as answer:
            if terminal:
                render.write_for_terminal(answer.chunks(), stdout,
                                          json="json" in answer.content_type)
            else:
                render.write_raw(answer.chunks(), stdout)
    except AdminError as e:
        hint = None
        if e.status == 405 and method == "GET":
            hint = "Envoy takes it as a change to the proxy: --allow-write POSTs it"
        elif e.status == 404 and not path.known:
            hint = "GET /help lists Envoy's admin endpoints"
        raise EnvoyRefused(e, hint) from e


def _header(pod, stdout: IO[str], first: bool) -> None:
    stdout.write(("" if first else "\n") + f"==> {pod.ref} <==\n")
    stdout.flush()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
