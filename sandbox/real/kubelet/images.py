"""Which images the sandbox can run: those it maps to a local program (sandbox/runtime.py
`Runtime._command`: Envoy for proxyv2, the Python istiod for pilot, the sandbox app for
application images, sandbox/bookinfo.py for Istio's bookinfo images, a host command for
debug images). Any other image cannot be "pulled"."""

from __future__ import annotations

import re

from ... import bookinfo

KNOWN_REPOSITORIES = frozenset({
    "sandbox/app", "istio/proxyv2", "istio/pilot", "istioinaction/catalog",
    "istioinaction/webapp", "kennethreitz/httpbin", "library/busybox", "library/nginx",
    "nicolaka/netshoot"})
_REFERENCE = re.compile(r"^(?:(?P<registry>[^/]+\.[^/]+|localhost(?::\d+)?)/)?"
                        r"(?P<path>[^:@]+)(?::[^@]+)?(?:@.+)?$")


def repository(image: str) -> str:
    """`docker.io/istio/proxyv2:1.28.0` → `istio/proxyv2`; `busybox` → `library/busybox`
    (Docker Hub's implicit `library/`, as containerd's reference normalisation does)."""
    m = _REFERENCE.match(image.strip())
    if not m:
        return ""
    path = m.group("path")
    return path if "/" in path else f"library/{path}"


def known(image: str) -> bool:
    """A known repository, also under a mirror's path prefix (AKS's
    `mcr.microsoft.com/oss/istio/pilot` is istio/pilot, as `Runtime._command` runs it)."""
    repo = repository(image)
    return (any(repo == k or repo.endswith("/" + k) for k in KNOWN_REPOSITORIES)
            or bookinfo.image_service(image) is not None)
