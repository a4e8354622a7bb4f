#!/usr/bin/env python3
"""Build the krew release: dist/kubectl-mesh-<version>.tar.gz and its manifest.

The archive holds `kubectl-mesh`, a zipapp (`#!/usr/bin/env python3` + a zip) carrying
kubectl_mesh and its pure-Python dependencies, and LICENSE. The sha256 of the archive is
written into every platform entry of the krew manifest.

Dependencies are taken from the running interpreter's installed distributions (run it with
the project's venv python), following install_requires from setup.cfg. Compiled parts:
- modules with a pure-Python twin (charset_normalizer's mypyc `md`/`cd`) or an optional
  accelerator (PyYAML's `_yaml`) are left out: the pure code runs instead;
- pydantic/pydantic-core (the Kubernetes client's models; pydantic-core has no pure
  fallback, and pydantic must match its exact version) are NOT bundled. The commands do not
  need the kubernetes client (exec credential plugins are run by kube/kubeconfig.py itself);
  only legacy auth-provider kubeconfigs do, and then need pydantic installed for the user's
  python3 (the manifest's caveats say so);
- aiohttp and its helpers serve only the asyncio client (kubernetes.aio), which is dropped.
Any other compiled module without a pure fallback fails the build.

The build is reproducible: sorted entries, fixed timestamps and owners.
"""

from __future__ import annotations

import argparse
import configparser
import gzip
import hashlib
import importlib.metadata as metadata
import io
import os
import py_compile
import re
import shutil
import sys
import tarfile
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCH = 315532800  # 1980-01-01, the earliest time a zip entry can carry
RELEASE_URL = "https://github.com/kubectl-mesh/kubectl-mesh/releases/download/v{version}/{archive}"

EXCLUDED = {
    "pydantic": "the kubernetes client's models; must match pydantic-core exactly",
    "pydantic-core": "compiled, no pure-Python fallback",
    "aiohttp": "asyncio client only (kubernetes.aio)",
    "aiohttp-retry": "asyncio client only (kubernetes.aio)",
    "cryptography": "compiled; the secrets table leaves serial and validity empty without it "
                    "(a python3 with cryptography installed fills them)",
    "cffi": "compiled; only cryptography needs it",
}
SKIPPED_PATHS = ("kubernetes/aio/",)  # needs aiohttp
OPTIONAL_EXTENSIONS = ("yaml/_yaml",)  # PyYAML falls back to its pure loaders
PYTHON_VERSIONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")  # python_requires >= 3.9

MAIN_PY = '''"""kubectl-mesh, zipapp build (krew)."""
import sys

if sys.version_info < (3, 9):
    sys.exit("kubectl-mesh needs Python >= 3.9 (python3 is %d.%d)" % sys.version_info[:2])

from kubectl_mesh.cli.dispatch import process_main

process_main()
'''


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def install_requires(setup_cfg: str) -> list[str]:
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    return [line.strip() for line in config["options"]["install_requires"].splitlines()
            if line.strip()]


def _requirement(text: str):
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip always carries a copy
        from pip._vendor.packaging.requirements import Requirement
    return Requirement(text)


def _applies(requirement) -> bool:
    """A non-extra requirement that holds on any supported Python version."""
    if requirement.marker is None:
        return True
    env = dict(extra="")
    return any(requirement.marker.evaluate(dict(env, python_version=v, python_full_version=v + ".0"))
               for v in PYTHON_VERSIONS)


def dependency_closure(roots: list[str]) -> list[metadata.Distribution]:
    """The installed distributions needed by `roots`, minus EXCLUDED, sorted by name."""
    found: dict[str, metadata.Distribution] = {}
    pending = [_requirement(r).name for r in roots]
    while pending:
        name = canonical(pending.pop())
        if name in found or name in EXCLUDED:
            continue
        dist = metadata.distribution(name)
        found[name] = dist
        for text in dist.requires or ():
            requirement = _requirement(text)
            if _applies(requirement):
                pending.append(requirement.name)
    return [found[n] for n in sorted(found)]


def stage_distribution(dist: metadata.Distribution, staging: str) -> None:
    """Copy a distribution's importable files (no compiled modules) and its license files."""
    files = [str(f) for f in dist.files or ()]
    names = set(files)
    dist_name = canonical(dist.metadata["Name"])
    for rel in files:
        if ".dist-info/" in rel:
            if "licen" in rel.lower() or "copying" in rel.lower() or "notice" in rel.lower():
                _copy(dist.locate_file(rel), os.path.join(staging, "_licenses", dist_name,
                                                          os.path.basename(rel)))
            continue
        if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc"):
            continue
        if rel.startswith(SKIPPED_PATHS):
            continue
        if rel.endswith((".so", ".pyd", ".dylib")):
            module = rel.split(".")[0]
            if module + ".py" not in names and not module.startswith(OPTIONAL_EXTENSIONS):
                raise SystemExit(f"build_dist: {dist_name} has a compiled module {rel} with no "
                                 "pure-Python fallback; exclude it (EXCLUDED) or vendor a wheel")
            continue
        _copy(dist.locate_file(rel), os.path.join(staging, rel))


def stage_project(staging: str) -> None:
    source = os.path.join(ROOT, "kubectl_mesh")
    for directory, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in files:
            if not name.endswith((".pyc", ".pyo")):
                path = os.path.join(directory, name)
                _copy(path, os.path.join(staging, os.path.relpath(path, ROOT)))
    with open(os.path.join(staging, "__main__.py"), "w", encoding="utf-8") as f:
        f.write(MAIN_PY)


def _copy(source, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(source, target)


def compile_pyc(staging: str) -> None:
    """Put `mod.pyc` next to each `mod.py`: zipimport cannot cache compiled code, so without
    these the kubernetes client would be recompiled on every run. Unchecked hash pycs need
    no timestamps; another Python version sees a foreign magic number and uses the source."""
    for directory, _, files in os.walk(staging):
        for name in files:
            if name.endswith(".py"):
                source = os.path.join(directory, name)
                py_compile.compile(
                    source, cfile=source[:-3] + ".pyc", dfile=os.path.relpath(source, staging),
                    doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)


def write_zipapp(staging: str, target: str) -> None:
    entries = sorted(
        os.path.relpath(os.path.join(d, f), staging) for d, _, fs in os.walk(staging) for f in fs)
    with open(target, "wb") as out:
        out.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for rel in entries:
                info = zipfile.ZipInfo(rel.replace(os.sep, "/"), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(os.path.join(staging, rel), "rb") as f:
                    archive.writestr(info, f.read())
    os.chmod(target, 0o755)


def write_release_tarball(zipapp: str, license_path: str, target: str) -> None:
    with open(target, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, name, mode in ((zipapp, "kubectl-mesh", 0o755), (license_path, "LICENSE", 0o644)):
            with open(path, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def update_manifest(text: str, *, version: str, uri: str, sha256: str) -> str:
    """Set spec.version, and uri and sha256 of every platform, keeping comments and layout."""
    text = re.sub(r"(?m)^(\s*version:\s*).*$", lambda m: f"{m.group(1)}v{version}", text)
    text = re.sub(r"(?m)^(\s*-?\s*uri:\s*).*$", lambda m: m.group(1) + uri, text)
    return re.sub(r"(?m)^(\s*-?\s*sha256:\s*).*$", lambda m: m.group(1) + sha256, text)


def project_version() -> str:
    with open(os.path.join(ROOT, "kubectl_mesh", "__init__.py"), encoding="utf-8") as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


def build(out_dir: str, manifest: str, *, pyc: bool = True) -> str:
    """Build the archive into out_dir, update `manifest` in place; return the archive path."""
    version = project_version()
    archive_name = f"kubectl-mesh-{version}.tar.gz"
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        staging = os.path.join(tmp, "app")
        stage_project(staging)
        for dist in dependency_closure(install_requires(os.path.join(ROOT, "setup.cfg"))):
            stage_distribution(dist, staging)
        if pyc:
            compile_pyc(staging)
        zipapp = os.path.join(tmp, "kubectl-mesh")
        write_zipapp(staging, zipapp)
        archive = os.path.join(out_dir, archive_name)
        write_release_tarball(zipapp, os.path.join(ROOT, "LICENSE"), archive)
    digest = sha256_of(archive)
    with open(manifest, encoding="utf-8") as f:
        text = update_manifest(f.read(), version=version, sha256=digest,
                               uri=RELEASE_URL.format(version=version, archive=archive_name))
    with open(manifest, "w", encoding="utf-8") as f:
        f.write(text)
    # The krew index wants the manifest as <plugin name>.yaml.
    shutil.copyfile(manifest, os.path.join(out_dir, "mesh.yaml"))
    with open(archive + ".sha256", "w", encoding="utf-8") as f:
        f.write(f"{digest}  {archive_name}\n")
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "dist"), help="output directory")
    parser.add_argument("--manifest", default=os.path.join(ROOT, "krew-manifest.yaml"),
                        help="krew manifest to update in place")
    parser.add_argument("--no-pyc", dest="pyc", action="store_false",
                        help="do not precompile (smaller, slower start-up)")
    args = parser.parse_args(argv)
    archive = build(args.out, args.manifest, pyc=args.pyc)
    print(f"{archive}  sha256={sha256_of(archive)}  ({os.path.getsize(archive) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
