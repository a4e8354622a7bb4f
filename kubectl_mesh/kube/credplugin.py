"""Running a client-go exec credential plugin (`users[].user.exec`, e.g. `aws eks get-token`,
`gke-gcloud-auth-plugin`) and reading its ExecCredential, bounded in time and never orphaned.

The protocol is client-go's (`plugin/pkg/client/auth/exec/exec.go`: `KUBERNETES_EXEC_INFO`,
`provideClusterInfo`, `status.token` or `status.clientCertificateData`/`clientKeyData`); it is
spoken here rather than through the kubernetes client, whose import needs pydantic-core (a
compiled package the krew zipapp cannot carry). Plugins are run non-interactively.

Unlike client-go, which waits for a plugin as long as it takes, the plugin gets a deadline,
and it runs in its own process group under a small `sh` guard: on the deadline, on Ctrl-C and
when kubectl-mesh itself is killed (the kernel's parent-death signal reaches the guard) the
whole group - the plugin and whatever it started - is killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from typing import Any, Callable, Mapping

from kubectl_mesh.errors import BadInputError, ForbiddenError, ToolMissingError, UnreachableError

DEFAULT_TIMEOUT = 60.0  # when --request-timeout is 0 (none): a plugin may ask an SSO service
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# The guard: runs the plugin in the background of its own process group and, on SIGTERM,
# kills that group. SIGTERM is what the kernel sends it when kubectl-mesh dies.
_GUARD = 'trap "kill -KILL 0" TERM; "$@" & wait $!'


def exec_credentials(exec_cfg: dict, what: str, cluster: dict | None = None,
                     environ: Mapping[str, str] | None = None,
                     timeout: float | None = None) -> dict:
    """The token or client certificate the plugin of `what` (e.g. `user 'u'`) prints.

    `timeout` bounds the plugin (None: DEFAULT_TIMEOUT)."""
    command = exec_cfg.get("command")
    if not command:
        raise BadInputError(f"the exec credential plugin of {what} has no command")
    hint = (exec_cfg.get("installHint") or "check the exec plugin in the kubeconfig").strip()
    env = _plugin_env(exec_cfg, cluster, os.environ if environ is None else environ)
    path = shutil.which(str(command), path=env.get("PATH", os.defpath))
    if path is None:
        raise ToolMissingError(f"the exec credential plugin {command!r} of {what} is not "
                               "installed, not on PATH or not executable", hint=hint)
    limit = timeout or DEFAULT_TIMEOUT
    argv = ["/bin/sh", "-c", _GUARD, "sh", path, *(str(a) for a in exec_cfg.get("args") or [])]
    try:
        returncode, stdout, stderr = run_guarded(argv, env, limit)
    except subprocess.TimeoutExpired:
        raise UnreachableError(f"the exec credential plugin {command!r} of {what} did not "
                               f"finish within {limit:g}s and was stopped",
                               hint="raise --request-timeout, or run the plugin by hand to "
                                    "see what it waits for") from None
    except OSError as e:
        raise ForbiddenError(f"the exec credential plugin {command!r} of {what} could not be "
                             f"started: {e.strerror}", hint=hint) from None
    if returncode != 0:
        last = (stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
        raise ForbiddenError(f"the exec credential plugin {command!r} of {what} exited "
                             f"{returncode}: {last}", hint=hint)
    return _credential(stdout, f"the exec credential plugin {command!r} of {what}", hint)


def _plugin_env(exec_cfg: dict, cluster: dict | None, environ: Mapping[str, str]) -> dict:
    env = dict(environ)
    for item in exec_cfg.get("env") or []:
        if isinstance(item, dict) and "name" in item:
            env[str(item["name"])] = str(item.get("value", ""))
    spec: dict[str, Any] = {"interactive": False}
    if exec_cfg.get("provideClusterInfo") and cluster:
        spec["cluster"] = {k: v for k, v in {
            "server": cluster.get("server"),
            "certificate-authority-data": cluster.get("certificate-authority-data"),
            "insecure-skip-tls-verify": cluster.get("insecure-skip-tls-verify")}.items() if v}
    api_version = exec_cfg.get("apiVersion") or "client.authentication.k8s.io/v1"
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": spec})
    return env


def run_guarded(argv: list[str], env: Mapping[str, str], timeout: float) -> tuple[int, bytes, bytes]:
    """(exit status, stdout, stderr) of `argv` in its own process group, which is killed on
    the deadline (TimeoutExpired), on any exception and after it exits (nothing it started
    outlives it); it also gets SIGTERM when this process dies."""
    proc = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_own_group_dying_with(os.getpid()))
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        _kill_group(proc.pid)
        if proc.returncode is None:
            proc.communicate()  # reap it and close the pipes
    return proc.returncode, stdout, stderr


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group has already gone


def _own_group_dying_with(parent: int) -> Callable[[], None]:
    """A preexec_fn: a new process group, and SIGTERM when `parent` dies (Linux prctl)."""
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            prctl = None

    def preexec() -> None:  # runs in the child between fork and exec: no allocations of note
        os.setpgid(0, 0)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)

    return preexec


def _credential(stdout: bytes, who: str, hint: str) -> dict:
    """The credential fields of an ExecCredential's `status`."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        raise BadInputError(f"{who} did not print an ExecCredential (JSON)",
                            hint=hint) from None
    status = doc.get("status") if isinstance(doc, dict) else None
    status = status if isinstance(status, dict) else {}
    out: dict[str, Any] = {}
    token = status.get("token")
    if token:
        if not isinstance(token, str):
            raise BadInputError(f"{who} printed a status.token that is not a string", hint=hint)
        out["token"] = token
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if cert and key:
        if not (isinstance(cert, str) and isinstance(key, str)):
            raise BadInputError(f"{who} printed a client certificate or key that is not a "
                                "string", hint=hint)
        out["client_cert_pem"], out["client_key_pem"] = cert.encode(), key.encode()
    if not out:
        raise ForbiddenError(f"{who} returned neither a token nor a client certificate",
                             hint=hint)
    return out
