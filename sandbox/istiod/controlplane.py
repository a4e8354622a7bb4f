"""Wires a source, the ADS server and the debug server together, with debounced pushes."""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures
from dataclasses import dataclass

import grpc

from sandbox.istiod import ads as ads_module
from sandbox.istiod.debug import DebugServer
from sandbox.istiod.mesh import Mesh

log = logging.getLogger("sandbox.istiod")


@dataclass(frozen=True)
class Options:
    listen: str
    xds_port: int = 15010
    debug_port: int = 15014
    controlz_port: int = 9876  # 0: no ControlZ (istiod's --ctrlz_port)
    kubeconfig: str | None = None
    objects: str | None = None
    debounce: float = 0.05
    max_streams: int = 200


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
        self.ads = ads_module.AdsServer()
        self._ready = threading.Event()
        self._debouncer = Debouncer(options.debounce, self._apply)
        if options.kubeconfig:
            from sandbox.istiod.source import KubeConfig, KubeSource
            self.source = KubeSource(KubeConfig.load(options.kubeconfig), self._debouncer.submit)
        elif options.objects:
            from sandbox.istiod.source import FileSource
            self.source = FileSource(options.objects, self._debouncer.submit)
        else:
            raise ValueError("one of kubeconfig or objects is required")
        # A sync server holds one worker per open stream: size it for many proxies.
        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(
            max_workers=options.max_streams, thread_name_prefix="ads"),
            # Without this a second istiod on the same address would silently share the port.
            options=[("grpc.so_reuseport", 0)])
        ads_module.serve(self.grpc_server, self.ads)
        bound = self.grpc_server.add_insecure_port(f"{options.listen}:{options.xds_port}")
        if not bound:
            raise OSError(f"cannot listen on {options.listen}:{options.xds_port}")
        self.debug = DebugServer(self.ads, (options.listen, options.debug_port),
                                 ready=self._ready.is_set)
        self.controlz = None
        if options.controlz_port:
            from sandbox.istiod.controlz import ControlZServer
            self.controlz = ControlZServer((options.listen, options.controlz_port))

    def _apply(self, objects: list) -> None:
        try:
            mesh = Mesh.from_objects(objects)
        except Exception:
            log.exception("cannot index %d objects; keeping the previous config", len(objects))
            return
        log.info("config change: %d services, %d pods, %d virtualservices, "
                 "%d destinationrules, %d gateways", len(mesh.services), len(mesh.pods),
                 len(mesh.virtual_services), len(mesh.destination_rules), len(mesh.gateways))
        self.ads.set_mesh(mesh)
        self._ready.set()

    def start(self) -> None:
        self.grpc_server.start()
        self.debug.start()
        if self.controlz is not None:
            self.controlz.start()
        self.source.start()
        log.info("istiod listening: xDS %s:%d, debug %s:%d", self.options.listen,
                 self.options.xds_port, self.options.listen, self.options.debug_port)

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def stop(self) -> None:
        self.source.stop()
        self._debouncer.cancel()
        self.grpc_server.stop(grace=0.5).wait(2)
        self.debug.stop()
        if self.controlz is not None:
            self.controlz.stop()
