"""The krew release: the manifest against krew's validation rules, and the archive itself.

Builds the archive (scripts/build_dist.py, as `make dist` does) into a temp dir with a copy of
the manifest, validates that copy, then runs the unpacked zipapp without the repo on sys.path.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

from kubectl_mesh import __version__

from conftest import REPO, VENV_PYTHON

sys.path.insert(0, os.path.join(REPO, "scripts"))
import build_dist  # noqa: E402

# In the slow matrix (`make test-fast` leaves it out): builds the release archive, twice for
# reproducibility (~1 min).
pytestmark = pytest.mark.slow

API_VERSION = "krew.googlecontainertools.github.com/v1alpha2"
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {
    f"LPT{i}" for i in range(1, 10)}
# <os, arch> pairs krew supports (validate-krew-manifest's allPlatforms, current list).
SUPPORTED = [("windows", "386"), ("windows", "amd64"), ("windows", "arm64"),
             ("linux", "386"), ("linux", "amd64"), ("linux", "arm"), ("linux", "arm64"),
             ("linux", "ppc64le"), ("linux", "s390x"),
             ("darwin", "386"), ("darwin", "amd64"), ("darwin", "arm64")]
SEMVER = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    manifest = out / "krew-manifest.yaml"
    shutil.copyfile(os.path.join(REPO, "krew-manifest.yaml"), manifest)
    archive = build_dist.build(str(out), str(manifest))
    with open(out / "mesh.yaml", encoding="utf-8") as f:
        index_manifest = yaml.safe_load(f)
    return archive, index_manifest, str(out / "mesh.yaml")


def selector_matches(selector: dict, os_name: str, arch: str) -> bool:
    labels = {"os": os_name, "arch": arch}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        value, values = labels.get(expr["key"]), expr.get("values") or []
        if not {"In": value in values, "NotIn": value not in values, "Exists": value is not None,
                "DoesNotExist": value is None}[expr["operator"]]:
            return False
    return True


def test_manifest_top_level(release):
    _, manifest, path = release
    assert manifest["apiVersion"] == API_VERSION
    assert manifest["kind"] == "Plugin"
    name = manifest["metadata"]["name"]
    assert re.fullmatch(r"[\w-]+", name) and name.upper() not in WINDOWS_RESERVED
    assert os.path.basename(path) == f"{name}.yaml"  # the index's file-name rule
    spec = manifest["spec"]
    assert SEMVER.match(spec["version"]) and spec["version"] == f"v{__version__}"
    short = spec["shortDescription"]
    assert short and "\n" not in short and "\r" not in short and len(short) <= 70
    for field in ("description", "caveats"):  # krew warns past 80 columns
        assert all(len(line) <= 80 for line in spec[field].splitlines()), field
    assert spec["homepage"].startswith("https://")
    assert spec["platforms"]


def test_platform_selectors(release):
    platforms = release[1]["spec"]["platforms"]
    covered = set()
    for i, platform in enumerate(platforms):
        selector = platform["selector"]
        assert selector and (selector.get("matchLabels") or selector.get("matchExpressions"))
        keys = set(selector.get("matchLabels") or {}) | {
            e["key"] for e in selector.get("matchExpressions") or ()}
        assert keys <= {"os", "arch"}, keys
        matched = {pair for pair in SUPPORTED if selector_matches(selector, *pair)}
        assert matched, f"platform {i} matches no supported os/arch"
        assert not matched & covered, f"platform {i} overlaps: {matched & covered}"
        covered |= matched
    assert {("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"),
            ("darwin", "arm64")} <= covered


def test_platforms_point_at_the_built_archive(release):
    archive, manifest, _ = release
    with open(archive, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert os.path.basename(archive) == f"kubectl-mesh-{__version__}.tar.gz"
    with tarfile.open(archive, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    for platform in manifest["spec"]["platforms"]:
        assert platform["uri"].startswith("https://")
        assert platform["uri"].endswith(os.path.basename(archive))
        assert re.fullmatch(r"[a-f0-9]{64}", platform["sha256"])
        assert platform["sha256"] == digest
        assert platform["bin"] == "kubectl-mesh"
        files = platform.get("files")
        assert files is None or (files and all(f.get("from") and f.get("to") for f in files))
        installed = {f["from"] for f in files} if files else set(members)
        assert {"LICENSE", platform["bin"]} <= installed <= set(members)
    assert members["kubectl-mesh"].mode & 0o111  # executable
    assert "LICENSE" in members and members["LICENSE"].size > 10000  # the Apache-2.0 text


def test_repo_manifest_has_the_same_shape(release):
    """The committed manifest differs from the built one only in sha256 values."""
    _, built, _ = release
    with open(os.path.join(REPO, "krew-manifest.yaml"), encoding="utf-8") as f:
        committed = yaml.safe_load(f)
    for platform in committed["spec"]["platforms"] + built["spec"]["platforms"]:
        platform.pop("sha256")
    assert committed == built


def test_build_is_reproducible(release, tmp_path):
    archive, _, _ = release
    manifest = tmp_path / "m.yaml"
    shutil.copyfile(os.path.join(REPO, "krew-manifest.yaml"), manifest)
    again = build_dist.build(str(tmp_path), str(manifest))
    assert build_dist.sha256_of(again) == build_dist.sha256_of(archive)


@pytest.fixture(scope="module")
def unpacked(release, tmp_path_factory):
    target = tmp_path_factory.mktemp("krew-install")
    with tarfile.open(release[0], "r:gz") as tar:
        tar.extractall(target, filter="data") if hasattr(tarfile, "data_filter") \
            else tar.extractall(target)
    # python3 on PATH is the venv's, started with -S: no site-packages, so neither the
    # repo (editable install) nor any installed dependency can be imported from outside.
    bin_dir = target / "python-bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python3"
    wrapper.write_text(f'#!/bin/sh\nexec "{VENV_PYTHON}" -S "$@"\n')
    wrapper.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(target), "LANG": "C.UTF-8"}
    return target, env


def _run(unpacked, *args, cwd="/"):
    target, env = unpacked
    return subprocess.run([str(target / "kubectl-mesh"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=60)


def test_unpacked_dispatcher_runs_without_the_repo(unpacked):
    result = _run(unpacked, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:\n  kubectl mesh <command> [flags]" in result.stdout
    assert "version" in result.stdout
    result = _run(unpacked, "version")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, f"kubectl-mesh {__version__}\n", "")
    result = _run(unpacked, "nosuch")
    assert result.returncode == 2 and "unknown command" in result.stderr


def test_bundled_dependencies_import_from_the_zipapp(unpacked):
    target, env = unpacked
    app = str(target / "kubectl-mesh")
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "import requests, urllib3, idna, charset_normalizer, certifi, yaml, tabulate, "
            "websocket, dateutil.parser, kubectl_mesh;"
            "mods = [requests, urllib3, idna, charset_normalizer, certifi, yaml, tabulate,"
            " websocket, kubectl_mesh];"
            "assert all(m.__file__.startswith(sys.argv[1]) for m in mods), mods;"
            "import os; assert os.path.getsize(certifi.where()) > 10000;"
            "print(yaml.safe_dump({'a': 1}).strip(), tabulate.tabulate([[1]]).count('-') > 0)")
    result = subprocess.run(["python3", "-c", code, app], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["a:", "1", "True"]


def test_kubernetes_client_from_the_zipapp_needs_only_pydantic(release, unpacked):
    """The bundled kubernetes client loads when pydantic is installed (the venv has it)."""
    target, _ = unpacked
    app = str(target / "kubectl-mesh")
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "import kubernetes.config, kubernetes.client, pydantic;"
            "from kubernetes.stream import ws_client;"
            "assert kubernetes.__file__.startswith(sys.argv[1]), kubernetes.__file__;"
            "assert not pydantic.__file__.startswith(sys.argv[1])")
    result = subprocess.run([VENV_PYTHON, "-c", code, app], capture_output=True, text=True,
                            timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
