"""Exception types and the exit codes they map to.

Transport errors are translated into these once, at the boundary (`raise ... from e`);
`kubectl_mesh.cli.run` maps them to one-line messages and exit codes.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Documented exit codes (README: "Exit codes")."""

    OK = 0
    FAILURE = 1  # unexpected failure, or a partial change that could not be undone
    USAGE = 2  # bad flags or arguments
    NOT_FOUND = 3  # target, pod, container or file not found
    FORBIDDEN = 4  # RBAC denied a verb (401/403)
    UNREACHABLE = 5  # API server, port-forward, Envoy admin or istiod unreachable / timed out
    BAD_INPUT = 6  # a file or response that is not what it should be (not JSON, not a dump)
    FINDINGS = 7  # the command worked and found a problem (trace breaks, NOT SYNCED, diff)
    TOOL_MISSING = 8  # a required local tool (kubectl, tcpdump, wireshark) is missing
    # Ended by a signal, after cleaning up: 128 + the signal number (`Terminated`).
    HANGUP = 129  # SIGHUP: the terminal or SSH session closed
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived (`kubectl_mesh.signals`); like KeyboardInterrupt for SIGINT,
    a BaseException, so every `finally` on the way out runs before the exit code."""

    def __init__(self, signum: int):
        import signal

        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class MeshError(Exception):
    """Base class: a message for the user, an optional hint, and an exit code."""

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(MeshError):
    exit_code = ExitCode.USAGE


class NotFoundError(MeshError):
    exit_code = ExitCode.NOT_FOUND


class ForbiddenError(MeshError):
    exit_code = ExitCode.FORBIDDEN


class UnreachableError(MeshError):
    exit_code = ExitCode.UNREACHABLE


class AdminError(UnreachableError):
    """Envoy's admin API answered with a non-200 status."""

    def __init__(self, message: str, status: int, body: str = "", hint: str | None = None):
        super().__init__(message, hint)
        self.status = status
        self.body = body


class BadInputError(MeshError):
    exit_code = ExitCode.BAD_INPUT


class FindingsError(MeshError):
    """The command ran and found a problem; output has already been written."""

    exit_code = ExitCode.FINDINGS


class ToolMissingError(MeshError):
    exit_code = ExitCode.TOOL_MISSING
