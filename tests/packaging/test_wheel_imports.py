"""The product declares what it imports: every third-party module a `kubectl_mesh` module
imports belongs to a distribution named in `install_requires` (not one that only arrives as
another package's dependency), and every module imports from a wheel installed in a clean
venv."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import REPO

PACKAGE = pathlib.Path(REPO) / "kubectl_mesh"


def declared_requirements() -> set[str]:
    """install_requires, plus the optional features' extras (e.g. `socks`: imported only for
    such a proxy-url, with a one-line error naming the package when it is missing); never
    the `test` extra."""
    cfg = configparser.ConfigParser()
    cfg.read(pathlib.Path(REPO) / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    for extra, value in cfg["options.extras_require"].items():
        if extra != "test":
            lines += value.splitlines()
    names = {re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0] for line in lines
             if line.strip() and not line.strip().startswith("#")}
    return {_normal(n) for n in names}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_modules() -> dict[str, list[str]]:
    """Third-party top-level module -> the product files importing it."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("kubectl_mesh", "__future__"):
                    continue
                found.setdefault(top, []).append(str(path.relative_to(REPO)))
    return found


def test_every_imported_distribution_is_declared():
    owners = importlib.metadata.packages_distributions()
    declared = declared_requirements()
    undeclared = {}
    for module, files in imported_top_level_modules().items():
        dists = {_normal(d) for d in owners.get(module, [])}
        assert dists, f"{module} (imported by {files[0]}) is not installed in the test venv"
        if not dists & declared:
            undeclared[module] = (sorted(dists), files[0])
    assert not undeclared, f"imported but not in install_requires: {undeclared}"


@pytest.mark.slow
def test_every_module_imports_from_a_wheel_in_a_clean_venv(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels),
                    REPO], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("kubectl_mesh-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                              "--disable-pip-version-check", str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    modules = sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                     for p in PACKAGE.rglob("*.py"))
    script = ("import importlib, sys\n"
              "bad = []\n"
              f"for m in {modules!r}:\n"
              "    try:\n"
              "        importlib.import_module(m)\n"
              "    except Exception as e:\n"
              "        bad.append(f'{m}: {type(e).__name__}: {e}')\n"
              "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n")
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)  # not the checkout: the wheel's copy is imported
    assert out.returncode == 0, out.stdout + out.stderr
