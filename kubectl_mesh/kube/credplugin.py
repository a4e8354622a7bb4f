"""Running a client-go exec credential plugin (`users[].user.exec`, e.g. `aws eks get-token`,
`gke-gcloud-auth-plugin`) and reading its ExecCredential, bounded in time and never orphaned.

The protocol is client-go's (`plugin/pkg/client/auth/exec/exec.go`; `rest.ConfigToExecCluster`
in rest/exec.go for `spec.cluster`); it is spoken here rather than through the kubernetes
client, whose import needs pydantic-core (a compiled package the krew zipapp cannot carry):

- `interactiveMode` as in `isInteractive`: Never (stdin not connected), IfAvailable (stdin
  connected when it is a terminal; the default), Always (fails without a terminal, with
  client-go's words). An interactive plugin shares our terminal and process group.
- `KUBERNETES_EXEC_INFO`: an ExecCredential of the configured apiVersion with
  `spec.interactive` and, with `provideClusterInfo`, `spec.cluster` (server,
  tls-server-name, insecure-skip-tls-verify, certificate-authority-data - the CA file's
  contents too -, proxy-url, disable-compression, and the cluster's
  `client.authentication.k8s.io/exec` extension as `config`).
- The plugin's stderr goes to ours as it comes (`cmd.Stderr = a.stderr` in
  `refreshCredsLocked`); the answer must carry the configured apiVersion.
- The credential is kept until its `expirationTimestamp` (`credsExpired`), and renewed once
  when the API server answers 401 (`maybeRefreshCreds`): `PluginCredentials`.

Unlike client-go, which waits for a plugin as long as it takes, the plugin gets a deadline,
and it runs in its own process group under a small `sh` guard: on the deadline, on Ctrl-C and
when kubectl-mesh itself is killed (the kernel's parent-death signal reaches the guard) the
whole group - the plugin and whatever it started - is killed.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Mapping

from kubectl_mesh.errors import BadInputError, ForbiddenError, ToolMissingError, UnreachableError
from kubectl_mesh.kube.kubeconfigcheck import check_token

DEFAULT_TIMEOUT = 60.0  # when --request-timeout is 0 (none): a plugin may ask an SSO service
INTERACTIVE_TIMEOUT = 300.0  # at least this for an interactive plugin: a person logs in
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# The guard: runs the plugin in the background of its own process group and, on SIGTERM,
# kills that group. SIGTERM is what the kernel sends it when kubectl-mesh dies.
_GUARD = 'trap "kill -KILL 0" TERM; "$@" & wait $!'

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
EXEC_EXTENSION = "client.authentication.k8s.io/exec"  # the cluster extension sent as config
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")


class PluginCredentials:
    """One user's exec plugin and the credential it last printed: kept until its
    `expirationTimestamp`, renewed once per stale token on a 401. Thread-safe."""

    def __init__(self, exec_cfg: dict, what: str, cluster: dict | None,
                 timeout: float | None, environ: Mapping[str, str] | None = None):
        self._args = (exec_cfg, what, cluster, environ, timeout)
        self._lock = threading.Lock()
        self._creds: dict = {}
        self._expires: float | None = None

    def current(self) -> dict:
        """The credential, running the plugin when there is none or it has expired."""
        with self._lock:
            if not self._creds or (self._expires is not None and time.time() >= self._expires):
                self._creds, self._expires = run_plugin(*self._args)
            return self._creds

    def renew(self, rejected_token: str | None) -> bool:
        """After a 401 for `rejected_token`: run the plugin again (unless another request
        already did) and say whether there is a different token to retry with."""
        with self._lock:
            if self._creds.get("token") == rejected_token:
                self._creds, self._expires = run_plugin(*self._args)
            return self._creds.get("token") != rejected_token


def exec_credentials(exec_cfg: dict, what: str, cluster: dict | None = None,
                     environ: Mapping[str, str] | None = None,
                     timeout: float | None = None) -> dict:
    """The token or client certificate the plugin of `what` (e.g. `user 'u'`) prints."""
    return run_plugin(exec_cfg, what, cluster, environ, timeout)[0]


def run_plugin(exec_cfg: dict, what: str, cluster: dict | None = None,
               environ: Mapping[str, str] | None = None,
               timeout: float | None = None) -> tuple[dict, float | None]:
    """(the credential, its expiry as a Unix time or None) the plugin of `what` prints.

    `timeout` bounds the plugin (None: DEFAULT_TIMEOUT)."""
    command = exec_cfg.get("command")
    if not command:
        raise BadInputError(f"the exec credential plugin of {what} has no command")
    hint = (exec_cfg.get("installHint") or "check the exec plugin in the kubeconfig").strip()
    api_version = exec_cfg.get("apiVersion") or API_VERSIONS[0]
    if api_version not in API_VERSIONS:
        # newAuthenticator: `exec plugin: invalid apiVersion`
        raise BadInputError(f"the exec credential plugin {command!r} of {what} has apiVersion "
                            f"{api_version!r}; client-go speaks {' and '.join(API_VERSIONS)}",
                            hint="fix the exec section's apiVersion in the kubeconfig")
    interactive = _interactive(exec_cfg, f"the exec credential plugin {command!r} of {what}")
    env = _plugin_env(exec_cfg, cluster, os.environ if environ is None else environ,
                      api_version, interactive, what)
    path = shutil.which(str(command), path=env.get("PATH", os.defpath))
    if path is None:
        raise ToolMissingError(f"the exec credential plugin {command!r} of {what} is not "
                               "installed, not on PATH or not executable", hint=hint)
    limit = timeout or DEFAULT_TIMEOUT
    if interactive:
        limit = max(limit, INTERACTIVE_TIMEOUT)
    args = [str(a) for a in exec_cfg.get("args") or []]
    # An interactive plugin talks to our terminal: it has to stay in our (foreground) process
    # group, so it runs without the guard and only it is killed on the deadline.
    argv = [path, *args] if interactive else ["/bin/sh", "-c", _GUARD, "sh", path, *args]
    try:
        returncode, stdout, stderr = run_guarded(argv, env, limit, interactive=interactive)
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
    return _credential(stdout, f"the exec credential plugin {command!r} of {what}", hint,
                       api_version)


def _interactive(exec_cfg: dict, who: str) -> bool:
    """Whether stdin is connected, as client-go's `isInteractive` decides."""
    mode = exec_cfg.get("interactiveMode") or "IfAvailable"
    if mode not in INTERACTIVE_MODES:
        raise BadInputError(f"{who} has interactiveMode {mode!r}, not one of "
                            f"{', '.join(INTERACTIVE_MODES)}",
                            hint="fix the exec section's interactiveMode in the kubeconfig")
    try:
        terminal = os.isatty(0)
    except OSError:
        terminal = False
    if mode == "Always" and not terminal:
        raise BadInputError(f"{who} cannot support interactive mode: standard input is not a "
                            "terminal (interactiveMode Always)",
                            hint="run the command in a terminal, or log in with the plugin "
                                 "first")
    return mode != "Never" and terminal


def _plugin_env(exec_cfg: dict, cluster: dict | None, environ: Mapping[str, str],
                api_version: str, interactive: bool, what: str) -> dict:
    env = dict(environ)
    for item in exec_cfg.get("env") or []:
        if isinstance(item, dict) and "name" in item:
            env[str(item["name"])] = str(item.get("value", ""))
    spec: dict[str, Any] = {"interactive": interactive}
    if exec_cfg.get("provideClusterInfo") and cluster:
        spec["cluster"] = exec_cluster(cluster, what)
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": spec})
    return env


def exec_cluster(cluster: dict, what: str) -> dict:
    """`spec.cluster` of the ExecCredential, as `rest.ConfigToExecCluster` fills it (the CA
    from the data or the file; the exec extension of the cluster as `config`)."""
    ca = cluster.get("certificate-authority-data")
    if not ca and cluster.get("certificate-authority"):
        try:
            with open(cluster["certificate-authority"], "rb") as f:
                ca = base64.b64encode(f.read()).decode()
        except OSError as e:
            raise BadInputError(f"cannot read the certificate-authority of the cluster of "
                                f"{what} for its exec plugin: {cluster['certificate-authority']}"
                                f": {e.strerror}") from None
    config = None
    for entry in cluster.get("extensions") or []:
        if isinstance(entry, dict) and entry.get("name") == EXEC_EXTENSION:
            config = entry.get("extension")
    return {k: v for k, v in {
        "server": cluster.get("server"),
        "tls-server-name": cluster.get("tls-server-name"),
        "insecure-skip-tls-verify": cluster.get("insecure-skip-tls-verify"),
        "certificate-authority-data": ca,
        "proxy-url": cluster.get("proxy-url"),
        "disable-compression": cluster.get("disable-compression"),
        "config": config}.items() if v}


def run_guarded(argv: list[str], env: Mapping[str, str], timeout: float, *,
                interactive: bool = False) -> tuple[int, bytes, bytes]:
    """(exit status, stdout, stderr) of `argv`; its stderr is also copied to ours as it comes.

    Not interactive: stdin is /dev/null and it runs in its own process group, which is killed
    on the deadline (TimeoutExpired), on any exception and after it exits (nothing it started
    outlives it). Interactive: it shares our stdin and process group (a terminal only lets
    the foreground group read), and only it is killed. Either way it gets SIGTERM when this
    process dies."""
    proc = subprocess.Popen(argv, env=dict(env),
                            stdin=None if interactive else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_dying_with(os.getpid(), own_group=not interactive))
    stdout: list[bytes] = []
    stderr: list[bytes] = []
    readers = [threading.Thread(target=_read_all, args=(proc.stdout, stdout), daemon=True),
               threading.Thread(target=_relay_stderr, args=(proc.stderr, stderr), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=timeout)
    finally:
        if interactive:
            if proc.returncode is None:
                proc.kill()
        else:
            _kill_group(proc.pid)
        proc.wait()
        for reader in readers:
            reader.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    return proc.returncode, b"".join(stdout), b"".join(stderr)


def _read_all(pipe, chunks: list[bytes]) -> None:
    for chunk in iter(lambda: pipe.read(65536), b""):
        chunks.append(chunk)


def _relay_stderr(pipe, lines: list[bytes]) -> None:
    """Copy the plugin's stderr to ours as it comes (a login prompt, a warning), keeping it."""
    for line in iter(lambda: pipe.read1(4096), b""):
        lines.append(line)
        try:
            sys.stderr.write(line.decode(errors="replace"))
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group has already gone


def _dying_with(parent: int, own_group: bool = True) -> Callable[[], None]:
    """A preexec_fn: a new process group (if `own_group`), and SIGTERM when `parent` dies
    (Linux prctl)."""
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            prctl = None

    def preexec() -> None:  # runs in the child between fork and exec: no allocations of note
        if own_group:
            os.setpgid(0, 0)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)

    return preexec


def _credential(stdout: bytes, who: str, hint: str,
                api_version: str) -> tuple[dict, float | None]:
    """The credential fields of an ExecCredential's `status`, and its expiry (Unix time)."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        raise BadInputError(f"{who} did not print an ExecCredential (JSON)",
                            hint=hint) from None
    said = doc.get("apiVersion") if isinstance(doc, dict) else None
    if said != api_version:  # refreshCredsLocked: "exec plugin is configured to use API version"
        raise BadInputError(f"{who} is configured to use API version {api_version} but "
                            f"printed {said or 'no apiVersion'}",
                            hint="set the exec section's apiVersion to what the plugin speaks")
    status = doc.get("status") if isinstance(doc, dict) else None
    status = status if isinstance(status, dict) else {}
    out: dict[str, Any] = {}
    token = status.get("token")
    if token:
        if not isinstance(token, str):
            raise BadInputError(f"{who} printed a status.token that is not a string", hint=hint)
        out["token"] = check_token(token, f"the token {who} returned")
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if cert and key:
        if not (isinstance(cert, str) and isinstance(key, str)):
            raise BadInputError(f"{who} printed a client certificate or key that is not a "
                                "string", hint=hint)
        out["client_cert_pem"], out["client_key_pem"] = cert.encode(), key.encode()
    if not out:
        raise ForbiddenError(f"{who} returned neither a token nor a client certificate",
                             hint=hint)
    return out, _expiry(status.get("expirationTimestamp"), who, hint)


def _expiry(stamp: Any, who: str, hint: str) -> float | None:
    """An RFC 3339 `expirationTimestamp` as a Unix time (None: it does not expire)."""
    if not stamp:
        return None
    try:
        when = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        raise BadInputError(f"{who} printed an expirationTimestamp that is not an RFC 3339 "
                            f"time: {str(stamp)[:40]!r}", hint=hint) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()
