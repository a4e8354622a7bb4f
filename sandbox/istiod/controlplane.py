"""Wires a source, the ADS server and the debug server together, with debounced pushes."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent import futures
from dataclasses import dataclass

import grpc

from sandbox.istiod import ads as ads_module
from sandbox.istiod.debug import DebugServer
from sandbox.istiod.mesh import Mesh

log = logging.getLogger("sandbox.istiod")
DEBUG_HTTP_SWITCH = "istiod-debug-http"  # in the sandbox state dir, beside the kubeconfig


@dataclass(frozen=True)
class Options:
    listen: str
    xds_port: int = 15010
    secure_xds_port: int = 15012  # TLS + token (needs kubeconfig: CA secret, TokenReview)
    debug_port: int = 15014  # monitoring: /debug/*, no /ready
    http_port: int = 8080  # /ready and /debug/* (istiod's --httpAddr)
    namespace: str = "istio-system"
    revision: str = "default"
    debug_on_http: bool = True  # ENABLE_DEBUG_ON_HTTP
    controlz_port: int = 9876  # 0: no ControlZ (istiod's --ctrlz_port)
    kubeconfig: str | None = None
    in_cluster: bool = False  # the API server as a pod reaches it (`KubeConfig.in_cluster`)
    objects: str | None = None
    debounce: float = 0.05
    max_streams: int = 200

    def cluster(self):
        """The API server to read objects from (`source.KubeConfig`), or None."""
        from sandbox.istiod.source import KubeConfig
        if self.kubeconfig:
            return KubeConfig.load(self.kubeconfig)
        return KubeConfig.in_cluster() if self.in_cluster else None


class Debouncer:
    """Coalesces bursts of object changes into one push `delay` seconds after the last one,
    but never holds a change back longer than `max_delay` (istiod's debounce/debounceMax)."""

    def __init__(self, delay: float, apply, max_delay: float = 1.0):
        self._delay = delay
        self._max_delay = max_delay
        self._apply = apply
        self._lock = threading.Lock()
        self._pending: list | None = None
        self._first: float | None = None
        self._timer: threading.Timer | None = None

    def submit(self, objects: list) -> None:
        with self._lock:
            now = time.monotonic()
            self._pending = objects
            if self._first is None:
                self._first = now
            if self._timer is not None:
                self._timer.cancel()
            delay = max(0.0, min(self._delay, self._first + self._max_delay - now))
            self._timer = threading.Timer(delay, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            objects, self._pending, self._timer, self._first = self._pending, None, None, None
        if objects is not None:
            self._apply(objects)

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()


class ControlPlane:
    def __init__(self, options: Options):
        self.options = options
        from sandbox.istiod.statusgen import DebugAccess
        access = DebugAccess.from_env()
        authenticator, tls = None, None
        self._roots = None  # istio-ca-root-cert in every namespace, with a cluster
        config = options.cluster()
        if config is not None:
            authenticator, tls = self._security(options, config)
        self.ads = ads_module.AdsServer(authenticator=authenticator, debug_access=access)
        self._ready = threading.Event()
        self._debouncer = Debouncer(options.debounce, self._apply)
        self._api_server = None
        if config is not None:
            from sandbox.istiod.source import KubeSource, advertised_address
            self._api_server = advertised_address(config) or config.address
            self.source = KubeSource(config, self._debouncer.submit)
        elif options.objects:
            from sandbox.istiod.source import FileSource
            self.source = FileSource(options.objects, self._debouncer.submit)
        else:
            raise ValueError("one of kubeconfig, in_cluster or objects is required")
        # A sync server holds one worker per open stream: size it for many proxies.
        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(
            max_workers=options.max_streams, thread_name_prefix="ads"),
            # Without this a second istiod on the same address would silently share the port.
            options=[("grpc.so_reuseport", 0)])
        ads_module.serve(self.grpc_server, self.ads)
        bound = self.grpc_server.add_insecure_port(f"{options.listen}:{options.xds_port}")
        if not bound:
            raise OSError(f"cannot listen on {options.listen}:{options.xds_port}")
        if tls is not None and options.secure_xds_port:
            bound = self.grpc_server.add_secure_port(
                f"{options.listen}:{options.secure_xds_port}",
                grpc.ssl_server_credentials([tls]))
            if not bound:
                raise OSError(f"cannot listen on {options.listen}:{options.secure_xds_port}")
        from sandbox.istiod.debug import DumpCache
        dumps = DumpCache()
        self.debug = DebugServer(self.ads, (options.listen, options.debug_port),
                                 debug_on_http=self._debug_on_http, dumps=dumps)
        self.http = DebugServer(self.ads, (options.listen, options.http_port),
                                ready=self._ready.is_set, debug_on_http=self._debug_on_http,
                                dumps=dumps)
        self.controlz = None
        if options.controlz_port:
            from sandbox.istiod.controlz import ControlZServer
            self.controlz = ControlZServer((options.listen, options.controlz_port))

    def _debug_on_http(self) -> bool:
        """ENABLE_DEBUG_ON_HTTP, which the sandbox can also turn off while istiod runs (no
        restart, so the proxies keep their connections): `<state>/istiod-debug-http`
        holding `off` (`RunningSandbox.istiod_debug_http`)."""
        if not self.options.debug_on_http:
            return False
        if not self.options.kubeconfig:
            return True
        switch = os.path.join(os.path.dirname(os.path.abspath(self.options.kubeconfig)),
                              DEBUG_HTTP_SWITCH)
        try:
            with open(switch, encoding="utf-8") as f:
                return f.read().strip() != "off"
        except OSError:
            return True

    def _security(self, options: Options, config):
        """The token authenticator and the (key, chain) of the TLS port, from the cluster
        `config`; the injector webhooks of this revision and its tags are created there too."""
        from sandbox.istiod import security
        session = config.session()
        cert, key = security.ClusterCa(session, config.server, options.namespace) \
            .load_or_create()
        self._roots = security.RootCertPublisher(session, config.server, cert)
        self._roots.publish([options.namespace])
        chain, serving_key = security.issue_serving(
            cert, key, security.serving_names(options.namespace, options.revision))
        from sandbox.istiod import webhooks
        tags = [t for t in os.environ.get("REVISION_TAGS", "").split(",") if t]
        webhooks.install(session, config.server, options.revision, options.namespace, tags)
        return security.TokenAuthenticator(session, config.server), (serving_key, chain)

    def _apply(self, objects: list) -> None:
        try:
            mesh = Mesh.from_objects(objects, api_server=self._api_server)
        except Exception:
            log.exception("cannot index %d objects; keeping the previous config", len(objects))
            return
        log.info("config change: %d services, %d pods, %d virtualservices, "
                 "%d destinationrules, %d gateways", len(mesh.services), len(mesh.pods),
                 len(mesh.virtual_services), len(mesh.destination_rules), len(mesh.gateways))
        self.ads.set_mesh(mesh)
        if self._roots is not None:
            self._roots.publish(
                sorted(o["metadata"]["name"] for o in objects if o.get("kind") == "Namespace"),
                {o["metadata"]["namespace"]: o for o in objects if o.get("kind") == "ConfigMap"})
        self._ready.set()

    def start(self) -> None:
        self.grpc_server.start()
        self.debug.start()
        self.http.start()
        if self.controlz is not None:
            self.controlz.start()
        self.source.start()
        log.info("istiod listening: xDS %s:%d (TLS %d), debug %s:%d%s", self.options.listen,
                 self.options.xds_port, self.options.secure_xds_port, self.options.listen,
                 self.options.debug_port,
                 "" if self.options.debug_on_http else " (/debug/* off: ENABLE_DEBUG_ON_HTTP)")

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def stop(self) -> None:
        self.source.stop()
        self._debouncer.cancel()
        self.grpc_server.stop(grace=0.5).wait(2)
        self.debug.stop()
        self.http.stop()
        if self.controlz is not None:
            self.controlz.stop()
