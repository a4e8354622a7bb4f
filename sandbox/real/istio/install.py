"""Apply the rendered control-plane manifests to the API server, as `istioctl install` does
(operator/pkg/install/install.go `serverSideApply`: server-side apply, field manager
istio-operator, forced, so a second install takes back the fields istiod patched, such as the
validator's failurePolicy), here with `kubectl apply --server-side --force-conflicts`; the
CustomResourceDefinitions first and awaited Established."""

from __future__ import annotations

import pathlib
import subprocess

import yaml

from . import manifests

FIELD_MANAGER = "istio-operator"


class InstallError(Exception):
    pass


def install(cp, istioctl: pathlib.Path, istiod_address: str | None, *,
            extra: tuple[str, ...] = (), istiod: str = "host") -> list[dict]:
    """Render (manifests.generate) and apply; returns the applied objects. `istiod`: "host"
    (istiod a host process at `istiod_address`, `discovery.Istiod`) or "pod" (its Deployment
    applied too, for a kubelet that runs it: `sidecar.kubelet_for(cp, None, ...)`)."""
    objects = [manifests.namespace(), *manifests.generate(istioctl, istiod_address, extra=extra,
                                                          istiod=istiod)]
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    rest = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    directory = cp.state_dir / "istio"
    directory.mkdir(exist_ok=True)
    _apply(cp, directory / "crds.yaml", crds)
    _kubectl(cp, "wait", "--for=condition=Established", "--timeout=60s",
             *(f"crd/{o['metadata']['name']}" for o in crds))
    _apply(cp, directory / "control-plane.yaml", rest)
    return objects


def _apply(cp, path: pathlib.Path, objects: list[dict]) -> None:
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    _kubectl(cp, "apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}",
             "-f", str(path))


def _kubectl(cp, *args: str) -> str:
    out = subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), *args],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise InstallError(f"kubectl {args[0]} failed: {out.stderr.strip()[-2000:]}")
    return out.stdout
