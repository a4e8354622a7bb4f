"""The installed executables as real kubectl (1.37) sees them: discovery, dispatch, completion."""

from __future__ import annotations

import os
import subprocess

import pytest

from kubectl_mesh.cli import COMMANDS, find_command

from conftest import PLUGIN_EXECUTABLES, REPO, system_path


def _kubectl(kubectl, bin_dir, *args):
    env = dict(os.environ, PATH=os.pathsep.join([str(bin_dir), system_path()]))
    env.pop("KUBECONFIG", None)
    return subprocess.run([kubectl, *args], capture_output=True, text=True, env=env, timeout=60,
                          cwd="/")


@pytest.mark.parametrize("source", ["pip", "checkout"])
def test_plugin_list_shows_every_executable_without_warnings(kubectl, installed_bin, source):
    bin_dir = installed_bin if source == "pip" else os.path.join(REPO, "plugins")
    result = _kubectl(kubectl, bin_dir, "plugin", "list")
    listed = {os.path.basename(line.strip()) for line in result.stdout.splitlines()
              if line.strip().startswith("/")}
    assert result.returncode == 0, result.stderr
    assert listed == set(PLUGIN_EXECUTABLES)
    assert "warning" not in (result.stdout + result.stderr).lower()


def test_checkout_plugins_are_executable_scripts():
    for name in os.listdir(os.path.join(REPO, "plugins")):
        path = os.path.join(REPO, "plugins", name)
        assert os.access(path, os.X_OK), name
        with open(path, encoding="utf-8") as f:
            assert f.readline() == "#!/usr/bin/env python3\n", name


def test_kubectl_mesh_help_through_kubectl(kubectl, installed_bin):
    result = _kubectl(kubectl, installed_bin, "mesh", "--help")
    assert result.returncode == 0, result.stderr
    assert "kubectl mesh <command> [flags]" in result.stdout  # plugin-style program name
    for command in COMMANDS:
        if command.is_installed():
            assert command.summary in result.stdout


@pytest.mark.parametrize("via", ["dispatcher", "executable"])
def test_kubectl_mesh_routes_help_through_kubectl(kubectl, installed_bin, via):
    """`kubectl mesh routes --help` finds kubectl-mesh-routes; with only the dispatcher on
    PATH (a krew install) kubectl falls back to kubectl-mesh."""
    if via == "dispatcher":
        for name in os.listdir(installed_bin):
            if name.startswith("kubectl-mesh-"):
                os.unlink(installed_bin / name)
    result = _kubectl(kubectl, installed_bin, "mesh", "routes", "--help")
    assert "Traceback" not in result.stderr
    assert find_command("routes").is_installed()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: kubectl mesh routes")


def test_kubectl_plugin_completion(kubectl, installed_bin):
    """kubectl >= 1.26 runs kubectl_complete-mesh[-routes] for `kubectl mesh ... <TAB>`."""
    result = _kubectl(kubectl, installed_bin, "__complete", "mesh", "")
    lines = result.stdout.splitlines()
    assert "version" in lines and lines[-1] == ":4"
    assert any(line.startswith("routes") for line in lines)  # kubectl's own, from kubectl-mesh-routes

    result = _kubectl(kubectl, installed_bin, "__complete", "mesh", "routes", "--kube")
    assert result.stdout.splitlines() == ["--kubeconfig", ":4"]

    result = _kubectl(kubectl, installed_bin, "__complete", "mesh", "routes", "-o", "")
    assert result.stdout.splitlines() == ["short", "wide", "json", "yaml", ":4"]
