"""`kubectl mesh secrets TARGET`: the proxy's certificates, their validity and serials."""

from __future__ import annotations

from kubectl_mesh.cli import proxyconfig

build_parser, main = proxyconfig.flagless(
    "secrets", "Show a proxy's certificates and when they expire.", "SecretsView")
