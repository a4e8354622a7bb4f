"""Kubernetes `Status` bodies for stream answers, and the error callbacks raise to refuse one."""

from __future__ import annotations


class StreamError(Exception):
    """Raised by spawn/attach/connect callbacks (or by us) to refuse a stream request.

    `status` is a `meta.k8s.io/v1` Status dict; its `code` becomes the HTTP status when the
    error happens before the upgrade.
    """

    def __init__(self, status: dict):
        super().__init__(status.get("message", "stream error"))
        self.status = status

    @property
    def code(self) -> int:
        return int(self.status.get("code") or 500)


def failure(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def bad_request(message: str) -> StreamError:
    return StreamError(failure(400, "BadRequest", message))


def success() -> dict:
    """What the kubelet writes on the status channel when the command exited 0."""
    return {"metadata": {}, "status": "Success"}


def exit_code(code: int, command: list[str] | None) -> dict:
    """The kubelet's NonZeroExitCode status; clients read `details.causes[0].message`."""
    what = f"error executing command {command}, " if command else ""
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: {what}exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal(message: str) -> dict:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
            "reason": "InternalError", "code": 500,
            "details": {"causes": [{"message": message}]}}


def returncode_to_exit(returncode: int) -> int:
    """Popen's -N (killed by signal N) as a container runtime reports it: 128+N."""
    return 128 - returncode if returncode < 0 else returncode
