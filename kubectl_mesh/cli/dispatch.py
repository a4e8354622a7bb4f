"""`kubectl-mesh`: the dispatcher (`kubectl mesh routes ...` -> `kubectl_mesh.cli.routes.main`).

Krew links exactly one executable per plugin, so a krew install has only this one; pip also
installs the separate `kubectl-mesh-<command>` executables, whose console-script functions
(`routes_main`, ...) live here too, so both paths give the same clean error when a command
module is missing. `--help` reads the registry only: no command module is imported.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Callable, NoReturn, Sequence, TextIO

from kubectl_mesh import __version__
from kubectl_mesh.cli import BUILTINS, COMMANDS, Command
from kubectl_mesh.cli import common
from kubectl_mesh.errors import ExitCode, UsageError


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None, *, commands: Sequence[Command] = COMMANDS) -> int:
    """Entry point of `kubectl-mesh`; `commands` is injectable for tests."""

    def dispatch(args, *, prog, stdout, stderr):
        return _dispatch(args, prog=prog, stdout=stdout, stderr=stderr, commands=commands)

    return common.run(dispatch, argv, prog=common.prog_name(), stdout=stdout, stderr=stderr)


def run_command(name: str, argv: Sequence[str] | None = None, stdout: TextIO | None = None,
                stderr: TextIO | None = None, *, commands: Sequence[Command] = COMMANDS) -> int:
    """Run one command by name: the body of every `kubectl-mesh-<name>` executable."""

    def call(args, *, prog, stdout, stderr):
        command = _lookup(name, commands)
        if command is None:
            raise UsageError(_unknown_message(prog, commands))
        return _call_module(command, args, stdout, stderr, commands)

    return common.run(call, argv, prog=common.prog_name(name), stdout=stdout, stderr=stderr)


def _dispatch(argv: list[str], *, prog: str, stdout: TextIO, stderr: TextIO,
              commands: Sequence[Command]) -> int:
    if not argv:
        stderr.write(help_text(prog, commands))
        return ExitCode.USAGE
    first, rest = argv[0], argv[1:]
    if first in ("-h", "--help"):
        stdout.write(help_text(prog, commands))
        return ExitCode.OK
    if first in ("version", "--version"):
        extra = [a for a in rest if a != "--debug"]
        if extra:
            raise UsageError(f"{prog} version takes no arguments (got {' '.join(extra)})")
        stdout.write(f"kubectl-mesh {__version__}\n")
        return ExitCode.OK
    if first == "help":
        if not rest:
            stdout.write(help_text(prog, commands))
            return ExitCode.OK
        first, rest = rest[0], ["--help"]
    if first.startswith("-"):
        raise UsageError(f"{prog}: flags go after the command, e.g. `{prog} routes {first} ...`; "
                         f"commands: {', '.join(_available(commands))}")
    command = _lookup(first, commands)
    if command is None or not command.is_installed():
        raise UsageError(_unknown_message(f"{prog} {first}", commands, first))
    return _call_module(command, rest, stdout, stderr, commands)


def _call_module(command: Command, argv: list[str], stdout: TextIO, stderr: TextIO,
                 commands: Sequence[Command]) -> int:
    if not command.is_installed():
        raise UsageError(f"{common.prog_name(command.name)}: command not available in this "
                         f"installation ({command.module} is missing); available: "
                         f"{', '.join(_available(commands)) or 'none'}")
    module = importlib.import_module(command.module)
    code = module.main(list(argv), stdout=stdout, stderr=stderr)
    return ExitCode.OK if code is None else int(code)


def _lookup(name: str, commands: Sequence[Command]) -> Command | None:
    return next((c for c in commands if name == c.name or name in c.aliases), None)


def _available(commands: Sequence[Command]) -> list[str]:
    return [c.name for c in commands if c.is_installed()]


def _unknown_message(what: str, commands: Sequence[Command], typed: str | None = None) -> str:
    available = _available(commands) + [name for name, _ in BUILTINS]
    message = f"{what}: unknown command; available: {', '.join(available)}"
    if typed:
        import difflib

        close = difflib.get_close_matches(typed, available, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    return message


def help_text(prog: str, commands: Sequence[Command] = COMMANDS) -> str:
    """`kubectl mesh --help`: the commands and their summaries, from the registry alone."""
    installed = [c for c in commands if c.is_installed()]
    missing = [c.name for c in commands if not c.is_installed()]
    rows = [(c.name, c.summary + (f" (also: {', '.join(c.aliases)})" if c.aliases else ""))
            for c in installed] + list(BUILTINS)
    width = max(len(name) for name, _ in rows) + 2
    lines = [
        "kubectl-mesh: troubleshoot the Istio/Envoy data plane from kubectl.",
        "",
        "Usage:",
        f"  {prog} <command> [flags]",
        "",
        "Commands:",
    ]
    lines += [f"  {name:<{width}}{summary}" for name, summary in rows]
    if missing:
        lines += ["", f"Not installed in this build: {', '.join(missing)}"]
    lines += [
        "",
        "Common flags: --kubeconfig, --context, -n/--namespace, -o/--output, --debug",
        f"Run `{prog} <command> --help` for a command's flags.",
        "",
    ]
    return "\n".join(lines)


def exit_process(code: int) -> NoReturn:
    """End the process with `code` now, skipping the interpreter's teardown.

    By the time a command returns its exit code it has written and flushed its output and
    cleaned up in `finally` blocks (port-forwards, debug pods, levels restored); what
    remains is freeing and garbage-collecting every object, ~20 ms after a 7 MB config
    dump. Only the process entry points call this; in-process callers (tests) use the
    functions that return codes.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe was already reported by common.run
            pass
    os._exit(code)


def process_main() -> NoReturn:
    """The `kubectl-mesh` executable (pip console script, checkout plugin, krew zipapp)."""
    exit_process(main())


def _executable(name: str) -> Callable[[], NoReturn]:
    def command_main() -> NoReturn:
        exit_process(run_command(name))
    command_main.__name__ = command_main.__qualname__ = f"{name}_main"
    command_main.__doc__ = f"The `kubectl-mesh-{name}` executable."
    return command_main


# Console-script functions of the separate executables (setup.cfg), one per command.
sync_main = _executable("sync")
routes_main = _executable("routes")
listeners_main = _executable("listeners")
clusters_main = _executable("clusters")
endpoints_main = _executable("endpoints")
secrets_main = _executable("secrets")
loglevel_main = _executable("loglevel")
sniff_main = _executable("sniff")
accesslog_main = _executable("accesslog")
analyze_main = _executable("analyze")
describe_main = _executable("describe")
bootstrap_main = _executable("bootstrap")
all_main = _executable("all")
ecds_main = _executable("ecds")
rootca_compare_main = _executable("rootca-compare")
stats_main = _executable("stats")
dashboard_main = _executable("dashboard")
admin_main = _executable("admin")


if __name__ == "__main__":
    process_main()
