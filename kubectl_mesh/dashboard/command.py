"""`kubectl mesh dashboard`: listen on a local port, print its URL, open the browser, and
forward every connection to the pod port until a signal ends the command (the signal rule
of `cli.common.run`: Ctrl-C 130, SIGTERM 143, SIGHUP 129, after the port is closed).

Pages, as `istioctl dashboard` opens them (istioctl/pkg/dashboard/dashboard.go):
- a proxy (`envoy`/`proxy`): its Envoy admin port (15000, `--proxy-admin-port`), `/`;
- `istiod` (`controlz`): istiod's ControlZ (pkg/ctrlz, port 9876), `/`;
- `istiod-debug`: istiod's monitoring port 15014, `/debug`.
Before printing the URL one request checks that something answers on the pod port, so a
page that is not served (ControlZ turned off) is an error, not a browser's blank tab.
"""

from __future__ import annotations

import threading
import time
from typing import IO

from kubectl_mesh.dashboard.options import (CONTROLZ, ENVOY, ISTIOD_DEBUG, ISTIOD_DEBUG_PORT,
                                            DashboardOptions)
from kubectl_mesh.errors import ExitCode, UnreachableError


def run(opts: DashboardOptions, stdout: IO[str], stderr: IO[str]) -> int:
    from kubectl_mesh.kube.forwardport import ForwardedPort, is_loopback, url_host
    from kubectl_mesh.session import Session

    with Session.open(opts.cluster, stderr) as session:
        pod, port, path, what = _page(session, opts, stderr)
        channel = session.channel(pod, port)
        try:
            _check_answers(channel, pod, port, path, what, session.options.request_timeout)
            errors = _ErrorLine(stderr)
            with ForwardedPort(channel, opts.address, opts.port, on_error=errors) as local:
                url = f"http://{url_host(opts.address)}:{local.local_port}{path}"
                if not is_loopback(opts.address):
                    _say(stderr, f"warning: listening on {opts.address}: whoever reaches it "
                                 f"can use {what} of {pod.ref}, which has no authentication")
                _say(stderr, f"forwarding {url_host(opts.address)}:{local.local_port} to "
                             f"{what} of {pod.ref} (port {port}); Ctrl-C to stop")
                stdout.write(url + "\n")
                stdout.flush()
                if opts.browser:
                    from kubectl_mesh.dashboard.browser import open_browser
                    open_browser(url, stderr)
                _serve_until_signal()
        finally:
            channel.close()
    return ExitCode.OK  # not reached: only a signal ends the wait


def _page(session, opts: DashboardOptions, stderr: IO[str]):
    """(pod, pod port, URL path, what it is) for the page asked for."""
    if opts.page == ENVOY:
        from kubectl_mesh.session import pick_one

        pods = session.proxies(opts.target, opts.selector, stderr=stderr)
        pod = pick_one(pods, opts.target or f"-l {opts.selector}", stderr,
                       others="name a pod to choose another")
        return pod, session.options.proxy_admin_port, "/", "the Envoy admin page"
    from kubectl_mesh.sync.istiod import find_istiods

    istiods = find_istiods(session.api, opts.istio_namespace, opts.revision)
    ready = [p for p in istiods if p.ready] or istiods
    pod = ready[0]
    if len(istiods) > 1:
        _say(stderr, f"using istiod {pod.ref} ({len(istiods)} istiod pods in "
                     f"{opts.istio_namespace}; --revision picks a revision's)")
    if opts.page == CONTROLZ:
        return pod, opts.controlz_port, "/", "ControlZ"
    assert opts.page == ISTIOD_DEBUG
    return pod, ISTIOD_DEBUG_PORT, "/debug", "istiod's debug page"


def _check_answers(channel, pod, port: int, path: str, what: str,
                   timeout: float | None) -> None:
    """One GET of the page over the channel: any HTTP answer will do; none is an error."""
    from kubectl_mesh import podhttp

    http = podhttp.PodHttp(channel.describe, timeout, connect=channel.connect)
    try:
        http.request("GET", path)
    except podhttp.TransportError as e:
        seen = channel.errors()
        hint = f"port-forward: {seen[-1]}" if seen else None
        if what == "ControlZ":
            hint = (hint + "; " if hint else "") + \
                "is ControlZ on? istiod's --ctrlz_port, default 9876"
        raise UnreachableError(f"nothing answers on port {port} of {pod.ref} ({what})",
                               hint=hint or "is the container running?") from e
    finally:
        http.close()


def _serve_until_signal() -> None:
    """Wait in the main thread, where the signals arrive; the pipes run in their threads."""
    while True:
        time.sleep(3600)


class _ErrorLine:
    """A connection the forward could not carry, said on stderr, not the same line twice in a
    row (a browser retries: one cause, many connections)."""

    def __init__(self, stderr: IO[str]):
        self.stderr = stderr
        self._last = ""
        self._lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self._lock:
            if message == self._last:
                return
            self._last = message
        _say(self.stderr, f"error: forwarding a connection: {message}")


def _say(stderr: IO[str], line: str) -> None:
    from kubectl_mesh.output import printable

    try:
        stderr.write(printable(line) + "\n")
        stderr.flush()
    except (OSError, ValueError):
        pass
