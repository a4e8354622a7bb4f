"""Loading a kubeconfig the way kubectl does, into one frozen `ApiConfig`.

Order: `--kubeconfig FILE`, else `$KUBECONFIG` (a `:`-separated LIST, merged: the first file
that sets a cluster/user/context name or `current-context` wins; missing files are skipped,
like kubectl), else `~/.kube/config`, else the in-cluster service account. Relative paths in a
file are relative to that file. Exec / auth-provider credentials are delegated to the
`kubernetes` client (imported lazily, only then: it costs ~0.2-0.6 s of start-up).
"""

from __future__ import annotations

import base64
import os
import ssl
from dataclasses import dataclass, field
from typing import Any, Mapping

from kubectl_mesh.errors import BadInputError, ForbiddenError, NotFoundError, ToolMissingError

IN_CLUSTER = "in-cluster"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class ApiConfig:
    """Everything needed to talk to one API server as one user (the resolved context)."""

    server: str  # e.g. https://127.0.0.1:6443 (may carry a path prefix)
    context: str  # context name; "in-cluster" for the service account
    namespace: str  # -n, else the context's namespace, else "default"
    cluster: str = ""
    user: str = ""
    kubeconfig_paths: tuple[str, ...] = ()  # the files that were merged (empty in-cluster)
    explicit_kubeconfig: bool = False  # came from --kubeconfig (kubectl fallback passes it on)
    token: str | None = field(default=None, repr=False)
    ca_pem: bytes | None = field(default=None, repr=False)
    client_cert_pem: bytes | None = field(default=None, repr=False)
    client_key_pem: bytes | None = field(default=None, repr=False)
    insecure: bool = False  # insecure-skip-tls-verify
    tls_server_name: str | None = None
    proxy_url: str | None = None

    @property
    def where(self) -> str:
        """`https://host:port (context NAME)`, for error messages."""
        return f"{self.server} (context {self.context})"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context with the CA, client certificate and verification settings."""
        # Only the cluster's CA when it has one: loading the system store costs ~30 ms.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_pem:
            try:
                ctx.load_verify_locations(cadata=self.ca_pem.decode("ascii", "replace"))
            except (ssl.SSLError, ValueError) as e:
                raise BadInputError(f"the certificate authority of cluster {self.cluster!r} "
                                    f"is not a PEM certificate: {e}") from e
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if self.client_cert_pem and self.client_key_pem:
            _load_cert_chain(ctx, self.client_cert_pem, self.client_key_pem, self.user)
        return ctx


def _load_cert_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes, user: str) -> None:
    # ssl only loads key pairs from files: write them to a private directory, load, delete.
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kubectl-mesh-") as tmp:
        cert_path, key_path = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, ValueError) as e:
            raise BadInputError(f"the client certificate/key of user {user!r} cannot be "
                                f"loaded: {e}") from e


# ---- finding and merging files ---------------------------------------------------------------


def kubeconfig_paths(explicit: str | None, environ: Mapping[str, str]) -> tuple[list[str], bool]:
    """The files to merge and whether they were named explicitly (--kubeconfig)."""
    if explicit:
        if not os.path.isfile(explicit):
            raise NotFoundError(f"kubeconfig file {explicit} not found",
                                hint="check the --kubeconfig path")
        return [explicit], True
    env = environ.get("KUBECONFIG", "")
    if env:
        seen: list[str] = []
        for item in env.split(os.pathsep):
            if item and item not in seen:
                seen.append(item)
        return [p for p in seen if os.path.isfile(p)], False
    home = environ.get("HOME") or os.path.expanduser("~")
    default = os.path.join(home, ".kube", "config")
    return ([default] if os.path.isfile(default) else []), False


def read_kubeconfig(path: str) -> dict:
    """One kubeconfig file as a dict, with its relative file references made absolute."""
    import yaml  # only here: not on the --help path

    # The C loader when PyYAML has it: completion reads the kubeconfig on every <TAB>.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=loader) or {}  # noqa: S506 - a safe loader
    except OSError as e:
        raise NotFoundError(f"cannot read kubeconfig {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise BadInputError(f"kubeconfig {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise BadInputError(f"kubeconfig {path} is not a kubeconfig (a YAML mapping expected)")
    base = os.path.dirname(os.path.abspath(path))
    for entry in data.get("clusters") or []:
        _absolutize(entry.get("cluster"), ("certificate-authority",), base)
    for entry in data.get("users") or []:
        user = entry.get("user")
        _absolutize(user, ("client-certificate", "client-key", "tokenFile"), base)
        exec_cfg = (user or {}).get("exec")
        if isinstance(exec_cfg, dict):  # client-go resolves a command only if it has a '/'
            cmd = exec_cfg.get("command") or ""
            if os.sep in cmd and not os.path.isabs(cmd):
                exec_cfg["command"] = os.path.join(base, cmd)
    return data


def _absolutize(section: Any, keys: tuple[str, ...], base: str) -> None:
    if not isinstance(section, dict):
        return
    for key in keys:
        value = section.get(key)
        if value and not os.path.isabs(value):
            section[key] = os.path.join(base, value)


def merge_kubeconfigs(docs: list[dict]) -> dict:
    """kubectl's merge: per named map entry and for current-context, the FIRST file wins."""
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
    for doc in docs:
        for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in doc.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") not in merged[section]:
                    merged[section][entry.get("name")] = entry.get(inner) or {}
        if not merged["current-context"] and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
    return merged


# ---- the one entry point ---------------------------------------------------------------------


def load_config(kubeconfig: str | None = None, context: str | None = None,
                namespace: str | None = None, *, environ: Mapping[str, str] | None = None,
                service_account_dir: str = SERVICE_ACCOUNT_DIR) -> ApiConfig:
    """The `ApiConfig` for `--kubeconfig`, `--context`, `-n` (each may be None)."""
    env = os.environ if environ is None else environ
    paths, explicit = kubeconfig_paths(kubeconfig, env)
    merged = merge_kubeconfigs([read_kubeconfig(p) for p in paths])
    if not merged["contexts"] and not context and _in_cluster_available(env, service_account_dir):
        return _in_cluster(env, service_account_dir, namespace)
    if not paths:
        where = (f"none of the files in KUBECONFIG exist ({env['KUBECONFIG']})"
                 if env.get("KUBECONFIG") else "no ~/.kube/config and not running in a cluster")
        raise NotFoundError(f"no kubeconfig found: {where}",
                            hint="pass --kubeconfig FILE or set KUBECONFIG")
    return _from_kubeconfig(merged, paths, explicit, context, namespace)


def _from_kubeconfig(merged: dict, paths: list[str], explicit: bool, context: str | None,
                     namespace: str | None) -> ApiConfig:
    available = ", ".join(sorted(str(n) for n in merged["contexts"])) or "none"
    name = context or merged["current-context"]
    if not name:
        raise NotFoundError(f"kubeconfig {':'.join(paths)} has no current-context",
                            hint=f"pass --context; available: {available}")
    if name not in merged["contexts"]:
        raise NotFoundError(f'context "{name}" not found in kubeconfig {":".join(paths)}',
                            hint=f"available contexts: {available}")
    ctx = merged["contexts"][name]
    cluster_name, user_name = ctx.get("cluster", ""), ctx.get("user", "")
    if cluster_name not in merged["clusters"]:
        raise BadInputError(f'context "{name}" refers to cluster "{cluster_name}", which is not '
                            f"in kubeconfig {':'.join(paths)}")
    cluster = merged["clusters"][cluster_name]
    user = merged["users"].get(user_name) or {}
    if not cluster.get("server"):
        raise BadInputError(f'cluster "{cluster_name}" in kubeconfig has no server')
    creds = _credentials(user, user_name, merged, name)
    return ApiConfig(
        server=str(cluster["server"]).rstrip("/"), context=name,
        namespace=namespace or ctx.get("namespace") or "default",
        cluster=cluster_name, user=user_name, kubeconfig_paths=tuple(paths),
        explicit_kubeconfig=explicit,
        ca_pem=_data_or_file(cluster, "certificate-authority", f"cluster {cluster_name!r}"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"),
        proxy_url=cluster.get("proxy-url"),
        **creds,
    )


def _credentials(user: dict, user_name: str, merged: dict, context: str) -> dict:
    what = f"user {user_name!r}"
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = _read_file(user["tokenFile"], f"token file of {what}").decode().strip()
    creds = {
        "token": token or None,
        "client_cert_pem": _data_or_file(user, "client-certificate", what),
        "client_key_pem": _data_or_file(user, "client-key", what),
    }
    if not token and not creds["client_cert_pem"]:
        if isinstance(user.get("exec"), dict):
            creds.update(exec_credentials(user["exec"], what, merged["clusters"].get(
                (merged["contexts"].get(context) or {}).get("cluster"), {})))
        elif user.get("auth-provider"):
            creds.update(_delegated_credentials(merged, context))
    return creds


def exec_credentials(exec_cfg: dict, what: str, cluster: dict | None = None,
                     environ: Mapping[str, str] | None = None) -> dict:
    """Run a client-go credential plugin (`users[].user.exec`, e.g. aws eks get-token,
    gke-gcloud-auth-plugin) and read its ExecCredential: token or client certificate.

    Done here rather than through the kubernetes client, whose import needs pydantic-core (a
    compiled package the krew zipapp cannot carry). Plugins are run non-interactively.
    """
    import json
    import subprocess

    command = exec_cfg.get("command")
    if not command:
        raise BadInputError(f"the exec credential plugin of {what} has no command")
    api_version = exec_cfg.get("apiVersion") or "client.authentication.k8s.io/v1"
    env = dict(os.environ if environ is None else environ)
    for item in exec_cfg.get("env") or []:
        if isinstance(item, dict) and "name" in item:
            env[str(item["name"])] = str(item.get("value", ""))
    spec: dict[str, Any] = {"interactive": False}
    if exec_cfg.get("provideClusterInfo") and cluster:
        spec["cluster"] = {k: v for k, v in {
            "server": cluster.get("server"),
            "certificate-authority-data": cluster.get("certificate-authority-data"),
            "insecure-skip-tls-verify": cluster.get("insecure-skip-tls-verify")}.items() if v}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": spec})
    argv = [str(command), *(str(a) for a in exec_cfg.get("args") or [])]
    hint = exec_cfg.get("installHint") or "check the exec plugin in the kubeconfig"
    try:
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=60)
    except FileNotFoundError as e:
        raise ToolMissingError(f"the exec credential plugin {command!r} of {what} is not "
                               "installed or not on PATH", hint=hint.strip()) from e
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ForbiddenError(f"the exec credential plugin {command!r} of {what} failed: {e}",
                             hint=hint.strip()) from e
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
        raise ForbiddenError(f"the exec credential plugin {command!r} of {what} exited "
                             f"{done.returncode}: {last}", hint=hint.strip())
    try:
        status = (json.loads(done.stdout) or {}).get("status") or {}
    except ValueError as e:
        raise BadInputError(f"the exec credential plugin {command!r} of {what} did not print "
                            "an ExecCredential (JSON)") from e
    out: dict[str, Any] = {}
    if status.get("token"):
        out["token"] = status["token"]
    if status.get("clientCertificateData") and status.get("clientKeyData"):
        out["client_cert_pem"] = status["clientCertificateData"].encode()
        out["client_key_pem"] = status["clientKeyData"].encode()
    if not out:
        raise ForbiddenError(f"the exec credential plugin {command!r} of {what} returned "
                             "neither a token nor a client certificate", hint=hint.strip())
    return out


def _delegated_credentials(merged: dict, context: str) -> dict:
    """Legacy auth providers (oidc, gcp, azure): let the kubernetes client run them."""
    try:
        from kubernetes.client import Configuration
        from kubernetes.config.kube_config import KubeConfigLoader
    except ImportError as e:  # pragma: no cover - kubernetes is a dependency
        raise NotFoundError("the kubeconfig uses auth-provider credentials, which need "
                            "the Python package 'kubernetes'") from e
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": context}
    for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
        doc[section] = [{"name": n, inner: v} for n, v in merged[section].items()]
    cfg = Configuration()
    try:
        KubeConfigLoader(config_dict=doc, active_context=context).load_and_set(cfg)
    except Exception as e:  # the loader raises ConfigException, OSError, ...: all one story
        from kubectl_mesh.errors import ForbiddenError

        raise ForbiddenError(f"getting credentials for context {context!r} failed: {e}",
                             hint="check the exec plugin / auth provider in the kubeconfig") from e
    out: dict[str, Any] = {}
    auth = (cfg.api_key or {}).get("authorization") or cfg.api_key.get("BearerToken", "")
    if auth:
        out["token"] = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth
    if cfg.cert_file and cfg.key_file:
        out["client_cert_pem"] = _read_file(cfg.cert_file, "exec client certificate")
        out["client_key_pem"] = _read_file(cfg.key_file, "exec client key")
    return out


def _data_or_file(section: dict, key: str, what: str) -> bytes | None:
    data = section.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(data)
        except ValueError as e:
            raise BadInputError(f"{key}-data of {what} is not base64: {e}") from e
    if section.get(key):
        return _read_file(section[key], f"{key} of {what}")
    return None


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise NotFoundError(f"cannot read the {what}: {path}: {e.strerror}") from e


# ---- in-cluster ------------------------------------------------------------------------------


def _in_cluster_available(env: Mapping[str, str], sa_dir: str) -> bool:
    return bool(env.get("KUBERNETES_SERVICE_HOST")) and os.path.isfile(os.path.join(sa_dir, "token"))


def _in_cluster(env: Mapping[str, str], sa_dir: str, namespace: str | None) -> ApiConfig:
    host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    ns_file = os.path.join(sa_dir, "namespace")
    own_ns = _read_file(ns_file, "service account namespace").decode().strip() \
        if os.path.isfile(ns_file) else ""
    ca_file = os.path.join(sa_dir, "ca.crt")
    return ApiConfig(
        server=f"https://{host}:{port}", context=IN_CLUSTER,
        namespace=namespace or own_ns or "default", cluster=IN_CLUSTER, user="serviceaccount",
        token=_read_file(os.path.join(sa_dir, "token"), "service account token").decode().strip(),
        ca_pem=_read_file(ca_file, "service account CA") if os.path.isfile(ca_file) else None,
    )
