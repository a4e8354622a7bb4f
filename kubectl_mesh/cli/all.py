"""`kubectl mesh all TARGET`: every proxy-config table of one config dump (bootstrap,
clusters, listeners, routes, secrets, endpoints), as `istioctl proxy-config all`; `-o json`
is the whole dump."""

from __future__ import annotations

from kubectl_mesh.cli import proxyconfig

EPILOG = """\
One fetch of /config_dump?include_eds (istioctl's), then the tables in istioctl's order,
separated by a blank line. The single commands (routes, clusters, ...) take the filters."""

build_parser, main = proxyconfig.flagless(
    "all", "Show every table of a proxy's config at once.", "AllView", epilog=EPILOG,
    all_pods=False)
