"""`python -m sandbox.istiod --listen IP (--kubeconfig PATH | --in-cluster | --objects FILE)`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from sandbox.istiod.controlplane import ControlPlane, Options


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m sandbox.istiod",
                                     description="Sandbox control plane (xDS over gRPC ADS).")
    parser.add_argument("--listen", required=True, help="IP to bind (the istiod pod's IP)")
    parser.add_argument("--xds-port", type=int, default=15010)
    parser.add_argument("--secure-xds-port", type=int, default=15012,
                        help="TLS xDS with token authentication (0: off)")
    parser.add_argument("--debug-port", type=int, default=15014,
                        help="monitoring port: /debug/*, /metrics")
    parser.add_argument("--http-port", type=int, default=8080, help="/ready and /debug/*")
    parser.add_argument("--ctrlz-port", "--ctrlz_port", type=int, default=9876,
                        help="ControlZ port (0 = none)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--kubeconfig", help="read objects from this cluster (list + watch)")
    source.add_argument("--in-cluster", action="store_true",
                        help="read objects from the cluster this pod runs in (its service "
                             "account; KUBERNETES_SERVICE_HOST/PORT)")
    source.add_argument("--objects", help="read objects from this multi-document YAML file")
    parser.add_argument("--debounce", type=float, default=0.05, help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from sandbox.istiod.statusgen import env_bool
    # As istiod: its namespace from POD_NAMESPACE, its revision from REVISION (the chart's
    # env), ENABLE_DEBUG_ON_HTTP from the environment (pilot/pkg/features).
    return Options(listen=args.listen, xds_port=args.xds_port,
                   secure_xds_port=args.secure_xds_port, debug_port=args.debug_port,
                   http_port=args.http_port,
                   controlz_port=args.ctrlz_port,
                   kubeconfig=args.kubeconfig, in_cluster=args.in_cluster,
                   objects=args.objects, debounce=args.debounce,
                   namespace=os.environ.get("POD_NAMESPACE") or "istio-system",
                   revision=os.environ.get("REVISION") or "default",
                   debug_on_http=env_bool("ENABLE_DEBUG_ON_HTTP", True))


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        control_plane = ControlPlane(options)
    except (OSError, ValueError) as e:
        logging.getLogger("sandbox.istiod").error("cannot start: %s", e)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    control_plane.start()
    stop.wait()
    logging.getLogger("sandbox.istiod").info("stopping")
    control_plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
