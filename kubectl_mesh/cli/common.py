"""Shared command-line pieces: program names, the common flags, durations, and `run()`.

`run()` is THE top-level handler every command goes through: it maps `MeshError`s to their
exit codes and one-line messages, keeps Ctrl-C and closed pipes quiet, and shows tracebacks
only with `--debug`. It installs the one signal rule (`kubectl_mesh.signals`): SIGINT, SIGTERM
and SIGHUP unwind the command through its cleanup and exit 128 + the signal number (130, 143,
129). Only the standard library is imported here: this is on the `--help` path.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable, Optional, Sequence, TextIO

from kubectl_mesh import signals
from kubectl_mesh.clusteroptions import (  # noqa: F401 (re-exported for the cli modules)
    DEFAULT_CONCURRENCY, DEFAULT_PROXY_ADMIN_PORT, DEFAULT_REQUEST_TIMEOUT, ClusterOptions)
from kubectl_mesh.errors import ExitCode, MeshError, Terminated

MainFn = Callable[..., Optional[int]]

DEBUG_ENV = "KUBECTL_MESH_DEBUG"


# ---- program names --------------------------------------------------------------------------


def invoked_as_plugin(argv0: str | None = None) -> bool:
    """True when run as a kubectl plugin: kubectl execs `.../kubectl-mesh[-cmd]` by path."""
    if argv0 is None:
        argv0 = sys.argv[0] if sys.argv else ""
    return os.path.basename(argv0).startswith("kubectl-")


def prog_name(command: str | None = None, argv0: str | None = None) -> str:
    """The name usage text should show: `kubectl mesh routes` as a plugin, else the executable."""
    if invoked_as_plugin(argv0):
        return " ".join(["kubectl", "mesh"] + ([command] if command else []))
    return "-".join(["kubectl-mesh"] + ([command] if command else []))


# ---- durations --------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Go's longest time.Duration (2^63-1 ns, about 292 years) in whole seconds: what kubectl
# accepts, and as much as Python's socket and lock timeouts take (threading.TIMEOUT_MAX).
MAX_DURATION = 9223372036.0
# A timeout also ends up in poll()/select() (subprocess, selectors), which wait at most
# 2^31-1 ms, about 24.8 days: longer ones raise OverflowError there.
MAX_TIMEOUT = 596 * 3600.0


def parse_duration(text: str) -> float:
    """Seconds in `500ms`, `3s`, `5m`, `1h`, `1m30s` or a plain number of seconds.

    Raises argparse.ArgumentTypeError, so it can be a `type=` of any duration flag.
    """
    value = str(text).strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is None:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise argparse.ArgumentTypeError(
                f"invalid duration {text!r} (use e.g. 500ms, 10s, 5m, 1h or plain seconds)"
            )
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds != seconds or seconds < 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (must be >= 0)")
    if seconds > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (at most "
                                         f"{int(MAX_DURATION // 3600)}h, about 292 years)")
    return seconds


def parse_timeout(text: str) -> float:
    """A duration that is used as a timeout: at most MAX_TIMEOUT (596h); 0 means none."""
    seconds = parse_duration(text)
    if seconds > MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"invalid timeout {text!r} (at most "
                                         f"{int(MAX_TIMEOUT // 3600)}h; 0 means no timeout)")
    return seconds


def namespace_name(text: str) -> str:
    """A `-n` value: a DNS-1123 label, as Kubernetes requires of namespace names."""
    from kubectl_mesh.kube.names import dns1123_label_problem

    problem = dns1123_label_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"invalid namespace {text!r}: it {problem}")
    return text


def boolean(text: str) -> bool:
    """A `--flag=true|false` value as Go's flag package reads one (istioctl's
    `--use-kube=false`, `--browser=false`)."""
    value = text.strip().lower()
    if value in ("true", "t", "1", "yes"):
        return True
    if value in ("false", "f", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r} (true or false)")


def _port(text: str) -> int:
    return port_number(text)


def port_number(text: str, *, zero_is_free: bool = False) -> int:
    """A TCP port flag value (1-65535; with `zero_is_free`, 0 = let the system choose)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not (0 if zero_is_free else 1) <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"invalid port {text!r} (1-65535{'; 0 = a free one' if zero_is_free else ''})")
    return port


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r} (a whole number >= 1)")
    return number


# ---- flags ------------------------------------------------------------------------------------


class CommandParser(argparse.ArgumentParser):
    """argparse with kubectl's manners on a bad command line: a one-line usage and one error
    line – for an unknown flag, the nearest known one – instead of the whole usage block."""

    def error(self, message: str):
        unknown = message.removeprefix("unrecognized arguments: ")
        if unknown != message:
            message = self._unknown_flags(unknown.split())
        self.exit(ExitCode.USAGE, f"{self.short_usage()}\n{self.prog}: error: {message}\n")

    def short_usage(self) -> str:
        positionals = "".join(f" [{a.metavar or a.dest}]" if a.nargs in ("?", "*") else
                              f" {a.metavar or a.dest}" for a in self._get_positional_actions())
        return f"usage: {self.prog} [flags]{positionals} (see {self.prog} --help)"

    def _unknown_flags(self, words: list[str]) -> str:
        import difflib

        flags = [w for w in words if w.startswith("-")]
        if not flags:
            return f"unexpected argument{'s' if len(words) > 1 else ''}: {' '.join(words)}"
        known = [o for a in self._actions for o in a.option_strings]
        flag = flags[0].split("=", 1)[0]
        near = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
        return f"unknown flag {flag}" + (f"; did you mean {near[0]}?" if near else "")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, as wide as the terminal, without importing `shutil`: argparse
    makes a formatter for every `add_argument` (to check its metavar) and the stock one imports
    shutil for the width (~3 ms of every command's start-up, with bz2, lzma and fnmatch)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position,
                         terminal_columns() - 2 if width is None else width)


def terminal_columns(fallback: int = 80) -> int:
    """`shutil.get_terminal_size().columns`: $COLUMNS when a positive number, else the width of
    the terminal on stdout, else `fallback` (Lib/shutil.py `get_terminal_size`)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or fallback


def command_parser(prog: str, description: str | None = None, **kwargs) -> argparse.ArgumentParser:
    """An ArgumentParser with the flags every command has (`--debug`).

    allow_abbrev is off: abbreviations would make adding a flag later a breaking change.
    """
    kwargs.setdefault("formatter_class", HelpFormatter)
    parser = CommandParser(prog=prog, description=description, allow_abbrev=False, **kwargs)
    add_debug_flag(parser)
    return parser


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logs on stderr"
    )


def add_cluster_flags(parser: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    """The flags kubectl would handle itself, which a plugin must handle on its own."""
    group = parser.add_argument_group("cluster options")
    group.add_argument("--kubeconfig", metavar="PATH",
                       help="kubeconfig file (default: $KUBECONFIG, a ':'-separated list, "
                            "or ~/.kube/config)")
    group.add_argument("--context", help="kubeconfig context to use (default: current context)")
    group.add_argument("-n", "--namespace", type=namespace_name,
                       help="namespace of the target (default: the context's namespace)")
    if all_namespaces:
        group.add_argument("-A", "--all-namespaces", action="store_true",
                           help="list across all namespaces")
    group.add_argument("--as", dest="as_user", metavar="USER",
                       help="impersonate USER for every API request, like kubectl --as")
    group.add_argument("--as-group", dest="as_groups", metavar="GROUP", action="append",
                       default=[], help="impersonate GROUP too; repeat for more (needs --as "
                                        "or the kubeconfig user's as)")
    group.add_argument("--request-timeout", type=parse_timeout, default=DEFAULT_REQUEST_TIMEOUT,
                       metavar="DURATION",
                       help="timeout of each API/admin request, e.g. 500ms, 10s, 1m; 0 = none "
                            "(default: 10s)")
    group.add_argument("--proxy-admin-port", type=_port, default=DEFAULT_PROXY_ADMIN_PORT,
                       metavar="PORT", help="Envoy admin port in the pod (default: 15000)")


def add_output_flag(parser: argparse.ArgumentParser,
                    choices: Sequence[str] = ("short", "json", "yaml"),
                    default: str = "short") -> None:
    """`-o/--output`; argparse's error for a bad value lists the allowed ones."""
    parser.add_argument("-o", "--output", choices=tuple(choices), default=default,
                        help=f"output format: {'|'.join(choices)} (default: {default})")


def add_concurrency_flag(parser: argparse.ArgumentParser, default: int = DEFAULT_CONCURRENCY) -> None:
    parser.add_argument("--concurrency", type=_positive_int, default=default, metavar="N",
                        help=f"how many proxies to query at once (default: {default})")


def cluster_options(args: argparse.Namespace) -> ClusterOptions:
    """The cluster flags as the core's typed value."""
    timeout = getattr(args, "request_timeout", DEFAULT_REQUEST_TIMEOUT)
    return ClusterOptions(
        kubeconfig=getattr(args, "kubeconfig", None),
        context=getattr(args, "context", None),
        namespace=getattr(args, "namespace", None),
        all_namespaces=bool(getattr(args, "all_namespaces", False)),
        request_timeout=timeout or None,  # kubectl: 0 means no timeout
        proxy_admin_port=getattr(args, "proxy_admin_port", DEFAULT_PROXY_ADMIN_PORT),
        as_user=getattr(args, "as_user", None) or None,
        as_groups=tuple(getattr(args, "as_groups", None) or ()),
    )


# ---- the top-level handler -------------------------------------------------------------------


def wants_debug(argv: Sequence[str]) -> bool:
    """`--debug` among the flags (before any `--`), or KUBECTL_MESH_DEBUG=1."""
    flags = list(argv)
    if "--" in flags:
        flags = flags[: flags.index("--")]
    return "--debug" in flags or os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


def run(main_fn: MainFn, argv: Sequence[str] | None, *, prog: str,
        stdout: TextIO | None, stderr: TextIO | None) -> int:
    """Call `main_fn(argv, prog=, stdout=, stderr=)` and turn its outcome into an exit code.

    argparse writes help and usage errors to sys.stdout/sys.stderr, so those are pointed at
    the given streams while the command runs (tests inject StringIO).
    """
    import contextlib

    args = list(sys.argv[1:] if argv is None else argv)
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    debug = wants_debug(args)
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, stream=err, format="debug: %(name)s: %(message)s")
    try:
        with signals.raising(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main_fn(args, prog=prog, stdout=out, stderr=err)
        # Flush inside the try: a closed pipe must surface here, not at interpreter exit.
        out.flush()
        return ExitCode.OK if code is None else int(code)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), usage already printed
        _flush_quietly(out)
        return _system_exit_status(exc, err)
    except KeyboardInterrupt:
        _flush_quietly(out)
        return ExitCode.INTERRUPTED
    except Terminated as exc:
        _flush_quietly(out)
        return exc.exit_code
    except BrokenPipeError as exc:
        if _stdout_is_broken(out):
            _silence(out)
            return ExitCode.OK  # `| head` closed the pipe: not an error
        return _unexpected(exc, err, debug)
    except MeshError as exc:
        _flush_quietly(out)
        if debug:
            _print_traceback(err)
        _say(err, f"error: {exc}")
        return int(exc.exit_code)
    except ModuleNotFoundError as exc:
        _flush_quietly(out)
        top = (exc.name or "").split(".")[0]
        if not top or top == "kubectl_mesh":
            return _unexpected(exc, err, debug)
        if debug:
            _print_traceback(err)
        _say(err, f"error: the Python package {top!r} is missing (install it with "
                  f"`python3 -m pip install --user {top}`, or install kubectl-mesh with pip)")
        return ExitCode.TOOL_MISSING
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into a message
        _flush_quietly(out)
        return _unexpected(exc, err, debug)


def _unexpected(exc: BaseException, err: TextIO, debug: bool) -> int:
    if debug:
        _print_traceback(err)
        _say(err, f"error: unexpected: {type(exc).__name__}: {exc}")
    else:
        _say(err, f"error: unexpected: {type(exc).__name__}: {exc} "
                  "(run with --debug for the traceback)")
    return ExitCode.FAILURE


def _system_exit_status(exc: SystemExit, err: TextIO) -> int:
    if exc.code is None:
        return ExitCode.OK
    if isinstance(exc.code, int):
        return exc.code
    _say(err, str(exc.code))
    return ExitCode.FAILURE


def _print_traceback(err: TextIO) -> None:
    import traceback

    try:
        traceback.print_exc(file=err)
    except OSError:
        pass


def _say(err: TextIO, line: str) -> None:
    """Write one message line to stderr, control characters escaped (a name from a dump or
    the cluster cannot drive the terminal or add lines); a closed stderr is not worth a
    second error."""
    from kubectl_mesh.output import printable

    try:
        err.write(printable(line) + "\n")
        err.flush()
    except (OSError, ValueError):
        pass


def _flush_quietly(out: TextIO) -> None:
    try:
        out.flush()
    except BrokenPipeError:
        _silence(out)
    except (OSError, ValueError):
        pass


def _stdout_is_broken(out: TextIO) -> bool:
    """Whether the BrokenPipeError came from our stdout (and not, say, a socket)."""
    try:
        out.flush()
    except BrokenPipeError:
        return True
    except (OSError, ValueError):
        return False
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    import select

    if not hasattr(select, "poll"):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    # A pipe whose reader has gone polls as POLLERR (Linux) or POLLHUP.
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))


def _silence(out: TextIO) -> None:
    """Point stdout's fd at /dev/null so the interpreter's flush at exit cannot fail again."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
