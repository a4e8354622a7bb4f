"""The `kubectl-mesh` dispatcher, the command registry and the help path's imports."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import types

import pytest

from kubectl_mesh import __version__
from kubectl_mesh.cli import COMMANDS, Command, dispatch

from conftest import COMMAND_NAMES, REPO, VENV_BIN, VENV_PYTHON

FAKE = "kubectl_mesh.cli.faketest"


@pytest.fixture
def fake_command(monkeypatch):
    """A registered command whose module records how it was called."""
    calls = []
    module = types.ModuleType(FAKE)

    def main(argv=None, stdout=None, stderr=None):
        calls.append(list(argv))
        stdout.write("fake output\n")
        return 7 if argv == ["fail"] else 0

    module.main = main
    module.__spec__ = types.SimpleNamespace(name=FAKE)  # find_spec() answers from sys.modules
    monkeypatch.setitem(sys.modules, FAKE, module)
    return (Command("faketest", "A fake command for tests"),) + COMMANDS, calls


def _run(argv, commands=COMMANDS):
    out, err = io.StringIO(), io.StringIO()
    code = dispatch.main(argv, stdout=out, stderr=err, commands=commands)
    return code, out.getvalue(), err.getvalue()


def test_registry_matches_the_executables():
    assert tuple(c.name for c in COMMANDS) == COMMAND_NAMES
    assert all(c.summary and "\n" not in c.summary for c in COMMANDS)
    assert COMMANDS[1].module == "kubectl_mesh.cli.routes"
    assert COMMANDS[1].executable == "kubectl-mesh-routes"
    for name in COMMAND_NAMES:  # each console-script function exists
        assert callable(getattr(dispatch, f"{name.replace('-', '_')}_main"))


def test_help_lists_installed_commands_with_summaries(fake_command):
    commands, calls = fake_command
    code, out, err = _run(["--help"], commands)
    assert code == 0 and err == ""
    assert re.search(r"^  faketest +A fake command for tests$", out, re.M)
    assert "version" in out and "help" in out
    assert "kubectl-mesh <command> [flags]" in out or "kubectl mesh <command> [flags]" in out
    assert calls == []  # help imports and runs no command


def test_no_arguments_is_a_usage_error():
    code, out, err = _run([])
    assert code == 2 and out == "" and "Commands:" in err


def test_dispatches_arguments_and_exit_code(fake_command):
    commands, calls = fake_command
    assert _run(["faketest", "deploy/x", "-n", "foo", "--debug"], commands) == (
        0, "fake output\n", "")
    assert _run(["faketest", "fail"], commands)[0] == 7
    assert _run(["help", "faketest"], commands)[0] == 0
    assert calls == [["deploy/x", "-n", "foo", "--debug"], ["fail"], ["--help"]]


def test_version():
    assert _run(["version"]) == (0, f"kubectl-mesh {__version__}\n", "")
    assert _run(["--version"])[1] == f"kubectl-mesh {__version__}\n"
    code, out, err = _run(["version", "extra"])
    assert code == 2 and "takes no arguments" in err


def test_unknown_command_lists_available(fake_command):
    commands, _ = fake_command
    code, out, err = _run(["fakertest"], commands)
    assert code == 2 and out == ""
    assert err.startswith("error: kubectl") and "fakertest: unknown command; available: faketest" in err
    assert "did you mean 'faketest'?" in err
    assert "Traceback" not in err


def test_flags_before_the_command_are_rejected():
    code, _, err = _run(["-n", "foo", "routes"])
    assert code == 2 and "flags go after the command" in err


def test_registered_but_missing_module_is_a_clean_error():
    missing = Command("nosuchcmd", "Not written yet")
    code, out, err = _run(["nosuchcmd"], (missing,))
    assert code == 2 and "nosuchcmd: unknown command" in err and "Traceback" not in err
    out, err = io.StringIO(), io.StringIO()
    code = dispatch.run_command("nosuchcmd", ["--help"], stdout=out, stderr=err,
                                commands=(missing,))
    assert code == 2
    assert "command not available in this installation (kubectl_mesh.cli.nosuchcmd is missing)" \
        in err.getvalue()


def test_run_command_runs_the_module(fake_command):
    commands, calls = fake_command
    out = io.StringIO()
    assert dispatch.run_command("faketest", ["a"], stdout=out, stderr=io.StringIO(),
                                commands=commands) == 0
    assert calls == [["a"]] and out.getvalue() == "fake output\n"


HEAVY = ("kubernetes", "requests", "yaml", "urllib3", "tabulate", "kubectl_mesh.cli.routes")


@pytest.mark.parametrize("executable", ["kubectl-mesh", "kubectl-mesh-routes"])
def test_help_path_imports_nothing_heavy(executable):
    """`-X importtime` of the real executable: the help path stays in the standard library."""
    result = subprocess.run(
        [VENV_PYTHON, "-X", "importtime", os.path.join(VENV_BIN, executable), "--help"],
        capture_output=True, text=True, timeout=30, cwd="/")
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "kubectl_mesh.cli.dispatch" in imported  # the measurement saw our imports
    assert not {m for m in imported if m.split(".")[0] in HEAVY or m in HEAVY}


def test_module_entry_point_runs_dispatcher():
    result = subprocess.run([VENV_PYTHON, "-m", "kubectl_mesh.cli.dispatch", "version"],
                            capture_output=True, text=True, cwd=REPO, timeout=30)
    assert (result.returncode, result.stdout) == (0, f"kubectl-mesh {__version__}\n")


@pytest.mark.parametrize("alias, command", [
    ("route", "routes"), ("cluster", "clusters"), ("listener", "listeners"),
    ("endpoint", "endpoints"), ("secret", "secrets"), ("log", "loglevel"),
], ids=lambda v: v)
def test_istioctl_names_reach_their_command(alias, command):
    """`kubectl mesh route ...` (kubectl finds no kubectl-mesh-route and hands `route ...` to
    the dispatcher) runs the routes command, as istioctl's singular names do."""
    from kubectl_mesh.cli import dispatch
    out, err = io.StringIO(), io.StringIO()
    assert dispatch.main([alias, "--help"], out, err) == 0, err.getvalue()
    assert re.match(rf"usage: kubectl[ -]mesh[ -]{command} ", out.getvalue()), out.getvalue()[:80]
