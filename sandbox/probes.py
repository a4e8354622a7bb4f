"""Readiness of a sandbox container, as its real probes would see it: Envoy's `/ready` and
istiod's (port 8080, the chart's readinessProbe), else every declared port accepting
connections (a command-running container, or one without ports, is ready once started)."""

from __future__ import annotations

from typing import Callable

Dial = Callable[..., "object"]  # dial(port, timeout) -> a connected socket (OSError if not)


def ready(dial: Dial, is_proxy: bool, args, spec: dict) -> bool:
    """Whether the container with these process `args` and `spec`, in the pod that `dial`
    reaches (`sandbox.network.PodAddress.dial`), is ready."""
    if is_proxy:
        return http_ok(dial, 15000, "/ready")
    if "sandbox.istiod" in " ".join(args):
        return http_ok(dial, 8080, "/ready")  # the chart's readinessProbe
    ports = [p["containerPort"] for p in spec.get("ports") or []]
    if spec.get("command") or not ports:
        return True
    return all(tcp_ok(dial, port) for port in ports)


def http_ok(dial: Dial, port: int, path: str) -> bool:
    """GET answers 200. A bare socket rather than urllib: every pod is probed every 50 ms
    until Ready, and urllib's opener machinery made probing a large part of start-up CPU."""
    try:
        with dial(port, 0.5) as s:
            s.settimeout(0.5)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\n"
                      "Connection: close\r\n\r\n".encode())
            head = b""
            while b"\r\n" not in head and len(head) < 256:
                chunk = s.recv(256)
                if not chunk:
                    break
                head += chunk
            parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
            return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1] == b"200"
    except OSError:
        return False


def tcp_ok(dial: Dial, port: int) -> bool:
    try:
        with dial(port, 0.5):
            pass
        return True
    except OSError:
        return False
