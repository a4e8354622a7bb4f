"""A connection to one cluster as the user's flags describe it, and the proxies a target means."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Callable, Iterable, Iterator, TypeVar

from kubectl_mesh.clusteroptions import ClusterOptions

T = TypeVar("T")
R = TypeVar("R")


class Notices:
    """Messages a session says once on stderr however many pods meet the same condition."""

    def __init__(self, stderr: IO[str]):
        self.stderr = stderr
        self._said: set[str] = set()
        self._lock = threading.Lock()

    def once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._said:
                return
            self._said.add(key)
        print(message, file=self.stderr, flush=True)


@dataclass
class Session:
    """The resolved kubeconfig context and a lean API client; close() when done."""

    options: ClusterOptions
    config: object  # kube.kubeconfig.ApiConfig
    api: object  # kube.api.KubeApi
    tls: object = None  # kube.wsdial.TlsReuse: shared by this session's port-forwards
    notices: Notices | None = None

    @classmethod
    def open(cls, options: ClusterOptions, stderr: IO[str] | None = None) -> "Session":
        from kubectl_mesh.kube.api import KubeApi
        from kubectl_mesh.kube.kubeconfig import load_config
        config = load_config(options.kubeconfig, options.context, options.namespace,
                             exec_timeout=options.request_timeout, as_user=options.as_user,
                             as_groups=options.as_groups)
        if config.token_in_clear_text:
            print(f"warning: sending the token of user {config.user!r} in clear text to "
                  f"{config.where}: the kubeconfig's cluster {config.cluster!r} says http://",
                  file=sys.stderr)
        api = KubeApi(config, timeout=options.request_timeout)
        tls = None
        if config.server.startswith("https"):
            from kubectl_mesh.kube.wsdial import TlsReuse, tls_context
            # one context for the API requests and the port-forwards (the CA and key pair
            # loaded once), with the WebSockets' server-name check (`tls_context`)
            tls = TlsReuse(config, tls_context(config, api.ssl_context()))
        return cls(options, config, api, tls, Notices(stderr or sys.stderr))

    @property
    def namespace(self) -> str:
        return self.config.namespace

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def proxies(self, target: str | None, selector: str | None = None, *,
                stderr: IO[str] | None = None, any_pod: bool = False) -> list:
        """The Running proxy pods `target` (or `-l selector`) means (`any_pod`: every Running
        pod, sidecar or not); skipped pods are told."""
        from kubectl_mesh.kube.targets import parse_target, resolve

        def skipped(pod, reason: str) -> None:
            if stderr is not None:
                print(f"skipping {pod.ref}: {reason}", file=stderr)

        return resolve(self.api, parse_target(target, selector), self.namespace, on_skip=skipped,
                       any_pod=any_pod)

    def likely_pod(self, target: str | None, selector: str | None = None) -> "PodName | None":
        """The pod a one-pod target most likely names, before `proxies()` asks the API
        (`kube.targets.likely_pod`): work on it may start while the target is resolved."""
        from kubectl_mesh.kube.targets import likely_pod, parse_target
        if selector or not target:
            return None
        guess = likely_pod(parse_target(target), self.namespace)
        return PodName(*guess) if guess else None

    def channel(self, pod, port: int):
        """The one way to a pod port (`kube.portforward.open_channel`); close() it."""
        from kubectl_mesh.kube.portforward import open_channel
        return open_channel(self.config, pod, port, timeout=self.options.request_timeout,
                            tls=self.tls, notices=self.notices)

    @contextlib.contextmanager
    def admin(self, pod) -> Iterator[object]:
        """An `EnvoyAdmin` for `pod` over `channel(pod, admin port)`."""
        from kubectl_mesh.admin import admin_over
        with admin_over(self.channel(pod, self.options.proxy_admin_port), pod,
                        self.options.request_timeout) as admin:
            yield admin


@dataclass(frozen=True)
class PodName:
    """A pod known by name only (`Session.likely_pod`): enough for `channel` and `admin`."""

    name: str
    namespace: str

    @property
    def ref(self) -> str:
        return f"{self.name}.{self.namespace}"

    def same_pod(self, pod) -> bool:
        return (pod.name, pod.namespace) == (self.name, self.namespace)


class Ahead:
    """`work(*args)` started in a (daemon) thread at once; `result()` waits for it and
    returns its value or raises its exception. Work nobody asks the result of ends on its
    own; it must release what it holds itself (`with` blocks)."""

    def __init__(self, work: Callable[..., R], *args):
        self._value: object = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work, args), daemon=True,
                                        name="ahead")
        self._thread.start()

    def _run(self, work, args) -> None:
        try:
            self._value = work(*args)
        except BaseException as e:  # handed to result()'s caller
            self._error = e

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def ready_pods(pods: list, what: str, stderr: IO[str]) -> list:
    """The pods of a target a command works on: the Ready ones, saying which Running ones are
    skipped; every Running one, said once, when none is Ready; a lone pod as it is."""
    if len(pods) <= 1:
        return pods
    ready = [p for p in pods if p.ready]
    if not ready:
        print(f"note: no pod of {what} is Ready; using all {len(pods)} Running", file=stderr)
        return pods
    for p in pods:
        if not p.ready:
            print(f"skipping {p.ref}: not Ready", file=stderr)
    return ready


def pick_one(pods: list, what: str, stderr: IO[str],
             others: str | None = "--all-pods compares them all") -> object:
    """One ready pod of a multi-pod target, saying which on stderr (like `kubectl logs deploy/x`)
    and, when the command has one, how to see the `others`."""
    if len(pods) == 1:
        return pods[0]
    ready = [p for p in pods if p.ready] or pods
    chosen = ready[0]
    print(f"using pod {chosen.ref} ({len(pods)} pods match {what}"
          f"{f'; {others}' if others else ''})", file=stderr)
    return chosen


def for_each(items: Iterable[T], work: Callable[[T], R], *, concurrency: int,
             stderr: IO[str] | None = None, label: str = "proxies",
             progress_after: float = 1.0, while_waiting: Callable[[], object] | None = None,
             ) -> list[tuple[T, R | None, BaseException | None]]:
    """Run `work` over `items` with at most `concurrency` at once; results in input order.

    A progress line (`3/20 proxies`) goes to stderr once the work takes longer than
    `progress_after` seconds, and only when stderr is a terminal. `while_waiting()` runs in
    the calling thread while the work is under way (e.g. imports the rendering needs, done
    while Envoy builds its answer instead of after it).
    """
    import concurrent.futures  # on use: it imports logging (start-up time of every command)

    items = list(items)
    results: list = [None] * len(items)
    done = 0
    lock = threading.Lock()
    started = time.monotonic()
    show = stderr is not None and getattr(stderr, "isatty", lambda: False)()

    def run(i: int):
        nonlocal done
        try:
            results[i] = (items[i], work(items[i]), None)
        except Exception as e:  # reported per item; the caller decides what it means
            results[i] = (items[i], None, e)
        with lock:
            done += 1
            if show and time.monotonic() - started > progress_after:
                stderr.write(f"\r{done}/{len(items)} {label}")
                stderr.flush()

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        pending = pool.map(run, range(len(items)))  # submits every item now
        if while_waiting is not None:
            while_waiting()
        list(pending)
    if show and time.monotonic() - started > progress_after:
        stderr.write("\r\033[K")
    return results


def stderr_of(stream: IO[str] | None) -> IO[str]:
    return stream if stream is not None else sys.stderr
