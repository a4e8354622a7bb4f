"""`kubectl mesh bootstrap TARGET`: the proxy's bootstrap – Istio and Envoy versions, node,
admin address, xDS servers, static clusters – as `istioctl proxy-config bootstrap`."""

from __future__ import annotations

from kubectl_mesh.cli import proxyconfig

EPILOG = """\
The first rows are istioctl's `proxy-config bootstrap -o short`; -o json|yaml print the
BootstrapConfigDump as istioctl does by default."""

build_parser, main = proxyconfig.flagless(
    "bootstrap", "Show a proxy's bootstrap: versions, node, admin, xDS servers and static "
    "clusters.", "BootstrapView", outputs=("short", "json", "yaml"), epilog=EPILOG,
    all_pods=False)
