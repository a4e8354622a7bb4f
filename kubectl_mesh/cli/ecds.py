"""`kubectl mesh ecds TARGET`: the extension configs the proxy got over ECDS (Wasm plugins,
filters configured by reference), as `istioctl proxy-config ecds`."""

from __future__ import annotations

from kubectl_mesh.cli import proxyconfig

build_parser, main = proxyconfig.flagless(
    "ecds", "Show a proxy's extension configs (ECDS).", "EcdsView")
