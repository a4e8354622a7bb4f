"""Scenarios by name: a scenario file as given, a bundled one by its name
(`sandbox/scenarios/<name>.yaml`), or `bookinfo`, generated at run time from Istio's own
sample in the Istio module the real components are built from (never copied here):
samples/bookinfo/platform/kube/bookinfo.yaml and networking/bookinfo-gateway.yaml, in the
`default` namespace labelled `istio-injection=enabled` as the bookinfo docs tell users to
(samples/bookinfo/README.md, `kubectl label namespace default istio-injection=enabled`),
behind the default scenario's istiod and ingress gateway (`istio: ingressgateway`, the
selector of bookinfo-gateway.yaml)."""

from __future__ import annotations

import pathlib

import yaml

SCENARIOS = pathlib.Path(__file__).resolve().parent / "scenarios"
BOOKINFO = pathlib.Path("samples/bookinfo")
BOOKINFO_FILES = (BOOKINFO / "platform/kube/bookinfo.yaml",
                  BOOKINFO / "networking/bookinfo-gateway.yaml")
GENERATED = ("bookinfo",)


class SampleError(Exception):
    pass


def sample_file(relative: str | pathlib.Path) -> pathlib.Path:
    """A file of the Istio module's samples (`samples/bookinfo/networking/...`)."""
    from .real.apply import istio_module_dir
    path = istio_module_dir() / relative
    if not path.is_file():
        raise SampleError(f"{path} not found: the Istio module is not in the Go module cache "
                          "(run 'make real-components')")
    return path


def bookinfo_file(name: str) -> pathlib.Path:
    """One of bookinfo's networking files by name: `virtual-service-all-v1.yaml`."""
    return sample_file(BOOKINFO / "networking" / name)


def _control_plane() -> list[dict]:
    """The default scenario's istio-system: its Namespace, istiod and the ingress gateway."""
    docs = [d for d in yaml.safe_load_all((SCENARIOS / "default.yaml").read_text()) if d]
    return [d for d in docs if d.get("kind") == "Namespace" and d["metadata"]["name"] ==
            "istio-system" or (d.get("metadata") or {}).get("namespace") == "istio-system"]


def bookinfo_documents() -> list[dict]:
    injected = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}}
    docs = _control_plane() + [injected]
    for relative in BOOKINFO_FILES:
        docs += [d for d in yaml.safe_load_all(sample_file(relative).read_text()) if d]
    return docs


def resolve_scenario(name: str, state_dir: pathlib.Path) -> pathlib.Path:
    """The scenario file `python -m sandbox up --scenario NAME` means: an existing file; a
    bundled scenario's name; `bookinfo`, written to `<state>/scenarios/bookinfo.yaml` from the
    Istio module (SampleError when it is not there). Anything else is returned as given (the
    caller reports the missing file)."""
    path = pathlib.Path(name)
    if path.is_file() or path.suffix in (".yaml", ".yml") or "/" in name:
        return path
    if name in GENERATED:
        out = state_dir / "scenarios" / f"{name}.yaml"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# generated from the Istio module's {BOOKINFO} by sandbox/samples.py\n"
                       + yaml.safe_dump_all(bookinfo_documents(), sort_keys=False))
        return out
    bundled = SCENARIOS / f"{name}.yaml"
    return bundled if bundled.is_file() else path
