"""`kubectl mesh secrets TARGET`: the proxy's certificates, their validity and serials."""

from __future__ import annotations

from kubectl_mesh.cli import proxyconfig


def build_parser(prog: str):
    return proxyconfig.build_parser(prog, "Show a proxy's certificates and when they expire.",
                                    lambda p: None)


def view_of(args):
    from kubectl_mesh.proxyconfig.views import SecretsView
    return SecretsView()


main = proxyconfig.main_for("secrets", build_parser, view_of)
