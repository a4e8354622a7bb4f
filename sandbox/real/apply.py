"""Creating objects on the real API server from manifests, as `kubectl create -f` does:
the REST path of each object from API discovery (`/api/v1`, `/apis/<group>/<version>`:
its resource name and whether it is namespaced), Namespaces and CustomResourceDefinitions
first, and the Istio CRDs from the Istio module's chart (manifests/charts/base/files/
crd-all.gen.yaml, what `helm install istio-base` applies) so VirtualService,
DestinationRule, Gateway... are served."""

from __future__ import annotations

import os
import pathlib
import subprocess
import time
import urllib.parse

import yaml

VERSIONS = pathlib.Path(__file__).resolve().parent / "go" / "versions.env"
CRD_FILE = pathlib.Path("manifests/charts/base/files/crd-all.gen.yaml")


class ApplyError(Exception):
    pass


def istio_module_dir() -> pathlib.Path:
    """The Istio module the real components are built from, in the Go module cache."""
    version = next((line.split("=", 1)[1].strip() for line in VERSIONS.read_text().splitlines()
                    if line.startswith("ISTIO=")), "")
    cache = os.environ.get("GOMODCACHE") or ""
    if not cache:
        try:
            cache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True,
                                   timeout=30).stdout.strip()
        except OSError:
            cache = ""
    cache = cache or str(pathlib.Path.home() / "go" / "pkg" / "mod")
    return pathlib.Path(cache) / f"istio.io/istio@{version}"


def istio_crds() -> list[dict]:
    path = istio_module_dir() / CRD_FILE
    try:
        # libyaml's loader: 18,000 lines of schemas take PyYAML's pure-Python one seconds
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return [d for d in yaml.load_all(path.read_text(), Loader=loader) if d]
    except OSError:
        raise ApplyError(f"Istio CRDs not found at {path}: run 'make real-components'") from None


class Applier:
    """`create(obj)` on the API server `request(method, path, body) -> (status, body)`."""

    def __init__(self, request):
        self._request = request
        self._resources: dict[str, dict[str, tuple[str, bool]]] = {}  # apiVersion → kind → …

    def resource(self, api_version: str, kind: str, wait: float = 0.0) -> tuple[str, bool]:
        """(collection path prefix, namespaced) of `kind`; ApplyError when not served (after
        `wait` seconds of asking again: a CRD's kinds appear in discovery shortly after it
        is Established)."""
        deadline = time.monotonic() + wait
        while True:
            kinds = self._resources.get(api_version)
            if kinds is None or kind not in kinds:
                base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
                code, body = self._request("GET", base, None)
                kinds = {r["kind"]: (f"{base}/{r['name']}", r.get("namespaced", False))
                         for r in body.get("resources") or [] if "/" not in r["name"]} \
                    if code == 200 else {}
                self._resources[api_version] = kinds
            if kind in kinds:
                return kinds[kind]
            if time.monotonic() >= deadline:
                raise ApplyError(f"the API server does not serve {kind} ({api_version})")
            time.sleep(0.2)

    def create(self, obj: dict, *, wait: float = 0.0, exist_ok: bool = True) -> dict:
        meta = obj.get("metadata") or {}
        try:
            prefix, namespaced = self.resource(obj.get("apiVersion", ""), obj.get("kind", ""), wait)
        except ApplyError as e:
            raise ApplyError(f"{obj.get('kind')} {meta.get('name')}: {e}; a custom kind needs "
                             f"its CustomResourceDefinition in the scenario") from None
        path = prefix
        if namespaced:
            ns = urllib.parse.quote(meta.get("namespace") or "default", safe="")
            group = prefix.rsplit("/", 1)
            path = f"{group[0]}/namespaces/{ns}/{group[1]}"
        code, body = self._request("POST", path, obj)
        if code == 409 and exist_ok and obj.get("kind") == "Namespace" and meta.get("labels"):
            return self._label(f"{path}/{urllib.parse.quote(meta['name'], safe='')}",
                               meta["labels"])
        if code == 409 and exist_ok:
            return body
        if code >= 300:
            raise ApplyError(f"{obj.get('kind')} {meta.get('name')}: "
                             f"{body.get('message', body)}")
        return body

    def _label(self, path: str, labels: dict) -> dict:
        """An existing Namespace (`default`) gets the scenario's labels on top of its own,
        as `kubectl label namespace default istio-injection=enabled` gives them."""
        code, current = self._request("GET", path, None)
        if code == 200:
            current["metadata"]["labels"] = {**(current["metadata"].get("labels") or {}),
                                             **labels}
            code, current = self._request("PUT", path, current)
        if code >= 300:
            raise ApplyError(f"Namespace {path.rsplit('/', 1)[-1]}: "
                             f"{current.get('message', current)}")
        return current

    def create_all(self, objects: list[dict], wait: float = 10.0) -> None:
        """Namespaces and CRDs first, then the rest in their order (`kubectl create -f`)."""
        first = ("Namespace", "CustomResourceDefinition")
        for obj in sorted(objects, key=lambda o: o.get("kind") not in first):
            self.create(obj, wait=wait)

    def await_established(self, names: list[str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                code, body = self._request(
                    "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", None)
                conditions = (body.get("status") or {}).get("conditions") or []
                if code == 200 and any(c.get("type") == "Established" and c.get("status") == "True"
                                       for c in conditions):
                    break
                if time.monotonic() > deadline:
                    raise ApplyError(f"CustomResourceDefinition {name} not Established after "
                                     f"{timeout:.0f} s")
                time.sleep(0.1)
