"""`kubectl mesh secrets TARGET`: the proxy's certificates, their validity and serials."""

from __future__ import annotations

from kubectl_mesh.cli import proxyconfig


def _table(dump, args, fmt):
    from kubectl_mesh.configdump import secret_table
    return secret_table(dump.secrets, wide=fmt == "wide")


RESOURCE = proxyconfig.Resource("secrets", "Show a proxy's certificates and when they expire.",
                                lambda p: None, _table,
                                empty="No active or warming secrets found.")


def build_parser(prog: str):
    return proxyconfig.build_parser(RESOURCE, prog)


main = proxyconfig.main_for(RESOURCE)
