"""`rootca-compare POD1 POD2`: fetch each proxy's secrets, take its ROOTCA bundle and say, in
istioctl's words, whether the two trust the same root (exit 0) or not (FindingsError, 7)."""

from __future__ import annotations

from typing import IO

from kubectl_mesh.proxyconfig.options import RootCaOptions
from kubectl_mesh.proxyconfig.views import MASKS


def run(opts: RootCaOptions, stdout: IO[str], stderr: IO[str]) -> int:
    from kubectl_mesh.configdump.rootca import root_ca_certs, share_a_root
    from kubectl_mesh.configdump.shape import reading
    from kubectl_mesh.errors import FindingsError

    bundles = []
    for ref, section in _secrets(opts, stderr):
        with reading(ref):
            bundles.append((ref, root_ca_certs(section, ref)))
    (first, a), (second, b) = bundles
    if share_a_root(a, b):
        # istioctl/pkg/proxyconfig/proxyconfig.go rootCACompareConfigCmd: the same sentences
        print(f"Both [{first}] and [{second}] have the identical ROOTCA, theoretically the "
              "connectivity between them is available", file=stdout)
        return 0
    raise FindingsError(f"Both [{first}] and [{second}] have the non identical ROOTCA, "
                        "theoretically the connectivity between them is unavailable")


def _secrets(opts: RootCaOptions, stderr) -> list[tuple[str, dict]]:
    """(source, SecretsConfigDump section) of each of the two pods or files."""
    if opts.files:
        from kubectl_mesh.configdump import read_dump
        out = []
        for path in opts.files:
            dump = read_dump(path)
            out.append((dump.source, dump.section("secrets")))
        return out
    from kubectl_mesh.configdump import ConfigDump
    from kubectl_mesh.session import Session, pick_one
    out = []
    with Session.open(opts.cluster) as session:
        for target in opts.targets:
            pod = pick_one(session.proxies(target, stderr=stderr), target, stderr, others=None)
            with session.admin(pod) as admin:
                raw = admin.config_dump(mask=MASKS["secrets"])
            dump = ConfigDump(raw, pod.ref)
            out.append((pod.ref, dump.section("secrets") if dump.has("secrets") else {}))
    return out
