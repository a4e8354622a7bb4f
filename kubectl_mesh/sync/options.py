"""The typed, frozen options of one `kubectl mesh sync` run (the core never sees argparse)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubectl_mesh.clusteroptions import DEFAULT_CONCURRENCY, ClusterOptions
from kubectl_mesh.sync.istiod import DEFAULT_ISTIO_NAMESPACE

DEFAULT_WAIT_TIMEOUT = 60.0


@dataclass(frozen=True)
class ReachOptions:
    """The control-plane flags (istioctl's names: istioctl/pkg/clioptions/central.go)."""

    xds_address: str | None = None  # --xds-address HOST:PORT
    plaintext: bool = False  # --plaintext: 15010 / no TLS, no token
    cert_dir: str | None = None  # --cert-dir: root-cert.pem, cert-chain.pem, key.pem
    insecure: bool = False  # --insecure: do not verify istiod's certificate
    authority: str | None = None  # --authority: the name istiod's certificate must carry


@dataclass(frozen=True)
class SyncOptions:
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    target: str | None = None  # pod, NAME.NS, deploy/x ...; None = a whole namespace or all
    selector: str | None = None  # -l, instead of a target
    istio_namespace: str = DEFAULT_ISTIO_NAMESPACE
    revision: str | None = None  # a revision or a revision tag
    reach: ReachOptions = field(default_factory=ReachOptions)  # how to reach istiod
    output: str = "short"
    verify: bool = False
    diff: bool = False
    wait: bool = False
    timeout: float = DEFAULT_WAIT_TIMEOUT  # --wait's limit
    concurrency: int = DEFAULT_CONCURRENCY
    file: str | None = None  # a captured syncz instead of a cluster
