"""What `istioctl manifest generate` renders for the control plane: for an istiod that runs
outside the cluster (`istiod="host"`, the default), or for istiod as a pod (`istiod="pod"`:
everything the profile renders, the webhooks by `service: istiod.istio-system:443`, as
`istioctl install` applies it; the sandbox kubelet of the netns pod network runs the pod and
routes the Service, `istiodpod.py`).

The minimal profile (manifests/profiles/minimal.yaml) installs the base CRDs and istiod's
charts (manifests/charts/base, manifests/charts/istio-control/istio-discovery). Two values
make it the install of an external control plane (the istio.io "external control plane"
setup): `istiodRemote.injectionURL` and `base.validationURL` render the webhooks with
`clientConfig.url` (istio-discovery templates/mutatingwebhook.yaml "core",
validatingwebhookconfiguration.yaml) instead of `service: istiod.istio-system:443`.

Why `url:` and not the Service: kube-apiserver resolves a webhook Service to its ClusterIP
(cmd/kube-apiserver/app/server.go `buildServiceResolver`, `NewClusterIPServiceResolver`); no
kube-proxy serves a ClusterIP (10.96/16) here, and a call to one would leave loopback. With
--enable-aggregator-routing it dials an EndpointSlice address instead, but EndpointSlice and
Endpoints validation refuse loopback addresses (pkg/apis/core/validation `ValidateEndpointIP`:
"may not be in the loopback range"), and every address here is loopback – the reason the
control plane runs with --endpoint-reconciler-type=none too."""

from __future__ import annotations

import pathlib
import subprocess

import yaml

PROFILE = "minimal"
NAMESPACE = "istio-system"
WEBHOOK_PORT = 15017
ISTIOD_MODES = ("host", "pod")
# The istiod workload itself: it runs on the host (discovery.Istiod), not as a pod.
WORKLOAD_KINDS = frozenset({"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"})


class ManifestError(Exception):
    pass


def generate(istioctl: pathlib.Path, istiod_address: str | None, *, extra: tuple[str, ...] = (),
             istiod: str = "host") -> list[dict]:
    """The objects of the minimal profile. `istiod="host"`: webhooks pointing at
    https://<istiod_address>:15017, without istiod's Deployment, autoscaler and disruption
    budget; "pod": all of them, unchanged (`istiod_address` unused)."""
    if istiod not in ISTIOD_MODES:
        raise ValueError(f"istiod must be one of {ISTIOD_MODES}, not {istiod!r}")
    args = [str(istioctl), "manifest", "generate", "--set", f"profile={PROFILE}",
            "--set", f"values.global.istioNamespace={NAMESPACE}"]
    if istiod == "host":
        base = f"https://{istiod_address}:{WEBHOOK_PORT}"
        args += ["--set", f"values.istiodRemote.injectionURL={base}/inject",
                 "--set", f"values.base.validationURL={base}/validate"]
    for setting in extra:
        args += ["--set", setting]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise ManifestError(f"istioctl manifest generate failed: {out.stderr.strip()[-2000:]}")
    objects = [d for d in yaml.safe_load_all(out.stdout) if d]
    if istiod == "pod":
        return objects
    return [o for o in objects if o["kind"] not in WORKLOAD_KINDS]


def namespace() -> dict:
    """`istioctl install` creates istio-system itself; `manifest generate` does not render it."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
