"""Loading a kubeconfig the way kubectl does, into one frozen `ApiConfig`.

Order: `--kubeconfig FILE`, else `$KUBECONFIG` (a `:`-separated LIST, merged: the first file
that sets a cluster/user/context name or `current-context` wins; missing files are skipped,
like kubectl), else `~/.kube/config`, else the in-cluster service account. Relative paths in a
file are relative to that file. Each file's fields, the server URL and every token are
checked first (`kubeconfigcheck`). Exec credential plugins run in `credplugin`; a legacy
auth-provider (gcp, azure, oidc) is bad input naming the exec plugin that replaces it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import ssl
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

from kubectl_mesh.errors import BadInputError, NotFoundError
from kubectl_mesh.kube.kubeconfigcheck import (check_shape, check_token, redact, server_url,
                                               yaml_reason)
from kubectl_mesh.kube.names import dns1123_label_problem

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
    # Impersonation (--as, --as-group, or the kubeconfig user's as, as-groups, as-uid):
    # client-go's ImpersonatingRoundTripper (transport/round_trippers.go) sends these as
    # Impersonate-User, one Impersonate-Group per group, Impersonate-Uid on every request.
    as_user: str | None = None
    as_groups: tuple[str, ...] = ()
    as_uid: str | None = None
    # An exec plugin's credential (credplugin.PluginCredentials): renewed on expiry and on a
    # 401; `token` is then the first one it printed.
    plugin: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The loaders check each token where it comes from (naming that source); this is the
        # last guard: a token that cannot be a header value never reaches `http1` (or
        # requests), whose error ("Invalid header value b'Bearer ...'") would print it.
        if self.token is not None:
            check_token(self.token, f"the token of user {self.user!r}")

    @property
    def where(self) -> str:
        """`https://host:port (context NAME)`, for error messages."""
        return f"{redact(self.server)} (context {self.context})"

    @property
    def token_in_clear_text(self) -> bool:
        """Whether the token goes to a plain http:// server (the kubeconfig said so)."""
        return bool(self.token) and self.server.startswith("http://")

    def bearer_token(self) -> str | None:
        """The token to send now (an exec plugin's is re-fetched once it has expired)."""
        if self.plugin is not None:
            return self.plugin.current().get("token")
        return self.token

    def renew_credentials(self, rejected_token: str | None) -> bool:
        """After a 401 for `rejected_token`: whether a new token came (exec plugins only)."""
        return self.plugin is not None and self.plugin.renew(rejected_token)

    def auth_headers(self) -> list[tuple[str, str]]:
        """The credential and impersonation headers of every request, as (name, value) pairs:
        Impersonate-Group repeats, one per group (the API server reads each; one header with
        commas would be one group)."""
        token = self.bearer_token()
        pairs = [("Authorization", f"Bearer {token}")] if token else []
        if self.as_user:
            pairs.append(("Impersonate-User", self.as_user))
        pairs += [("Impersonate-Group", group) for group in self.as_groups]
        if self.as_uid:
            pairs.append(("Impersonate-Uid", self.as_uid))
        return pairs

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
    try:
        with _key_pair_files(cert, key) as (cert_path, key_path):
            ctx.load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, ValueError) as e:
        raise BadInputError(f"the client certificate/key of user {user!r} cannot be "
                            f"loaded: {e}") from e


@contextlib.contextmanager
def _key_pair_files(cert: bytes, key: bytes) -> Iterator[tuple[str, str]]:
    """Paths of files holding `cert` and `key`, for as long as the block runs: ssl loads key
    pairs from files only. Where the system has them (Linux), anonymous in-memory files named
    by /proc/self/fd: the key never touches a disk, and no `tempfile` import (~3 ms of
    start-up: it brings random and shutil); elsewhere a private temporary directory."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fds = []
        try:
            for name, data in (("tls.crt", cert), ("tls.key", key)):
                fds.append(os.memfd_create(name, os.MFD_CLOEXEC))
                view = memoryview(data)
                while view:
                    view = view[os.write(fds[-1], view):]
            yield tuple(f"/proc/self/fd/{fd}" for fd in fds)
        finally:
            for fd in fds:
                os.close(fd)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kubectl-mesh-") as tmp:
        cert_path, key_path = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        yield cert_path, key_path


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
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise NotFoundError(f"cannot read kubeconfig {path}: {e.strerror}") from e
    except UnicodeDecodeError:
        text = None  # PyYAML says where
    data = _plain_yaml(text) if text is not None else None
    if data is None:
        data = _pyyaml(path, text)
    if not isinstance(data, dict):
        raise BadInputError(f"kubeconfig {path} is not a kubeconfig (a YAML mapping expected)")
    return _checked(data, path)


def _plain_yaml(text: str):
    """The kubeconfig as the line reader of plain YAML reads it (what `kubectl config` writes:
    no import of PyYAML, ~10 ms of every command's start-up), or None for anything it leaves
    to PyYAML (`analyze.fastyaml`: the same value where it answers)."""
    from kubectl_mesh.analyze import fastyaml

    def scalar(plain: str) -> str:
        # YAML 1.1 resolves a plain scalar to something else than a string only when it
        # starts with one of these (PyYAML resolver.py, its implicit resolvers' first
        # characters); the words among them (true, null, ...) fastyaml has already taken.
        # A digit first (a static token, a hex id) is a string unless it is one of the
        # int, float or timestamp forms, which PyYAML reads.
        first = plain[:1]
        if first.isascii() and (first.isalpha() or (first.isdigit() and not _numeric(plain))):
            return plain
        raise fastyaml.Unsupported("scalar")

    try:
        data = fastyaml.load(text, scalar)
    except fastyaml.Unsupported:
        return None
    return data if isinstance(data, dict) else None


def _numeric(plain: str) -> bool:
    """Whether YAML 1.1 reads this plain scalar, which starts with a digit, as an int, a float
    or a timestamp: PyYAML resolver.py's implicit resolvers for those tags (the only ones whose
    first characters include digits), compiled only when a kubeconfig has such a scalar."""
    import re

    return re.match(r"""(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                        |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                        |[-+]?0b[0-1_]+
                        |[-+]?0[0-7_]+
                        |[-+]?(?:0|[1-9][0-9_]*)
                        |[-+]?0x[0-9a-fA-F_]+
                        |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+
                        |[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
                        |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?
                         (?:[Tt]|[\ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?
                         (?:[\ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)\Z""",
                    plain, re.X) is not None


def _pyyaml(path: str, text: str | None):
    import yaml

    # The C loader when PyYAML has it: completion reads the kubeconfig on every <TAB>.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        if text is None:
            with open(path, "rb") as f:
                return yaml.load(f, Loader=loader) or {}  # noqa: S506 - a safe loader
        return yaml.load(text, Loader=loader) or {}  # noqa: S506 - a safe loader
    except OSError as e:
        raise NotFoundError(f"cannot read kubeconfig {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        # Only the reason and the position: PyYAML's text quotes the offending line, which
        # may hold a token. `from None`: --debug tracebacks would print the quote too.
        raise BadInputError(f"kubeconfig {path} is not valid YAML: {yaml_reason(e)}",
                            hint="fix the file") from None


def _checked(data: dict, path: str) -> dict:
    check_shape(data, path)
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
                service_account_dir: str = SERVICE_ACCOUNT_DIR,
                exec_timeout: float | None = None, as_user: str | None = None,
                as_groups: tuple[str, ...] = ()) -> ApiConfig:
    """The `ApiConfig` for `--kubeconfig`, `--context`, `-n`, `--as`, `--as-group` (each may
    be None/empty).

    `exec_timeout` bounds an exec credential plugin (None: the plugin module's default).
    `--as`/`--as-group` override the kubeconfig user's `as`/`as-groups`, as in kubectl
    (clientcmd's `DirectClientConfig.ClientConfig` copies the overridden AuthInfo's
    Impersonate, ImpersonateGroups and ImpersonateUID into the rest.Config)."""
    import dataclasses

    env = os.environ if environ is None else environ
    paths, explicit = kubeconfig_paths(kubeconfig, env)
    merged = merge_kubeconfigs([read_kubeconfig(p) for p in paths])
    if not merged["contexts"] and not context and _in_cluster_available(env, service_account_dir):
        config = _in_cluster(env, service_account_dir, namespace)
    elif not paths:
        where = (f"none of the files in KUBECONFIG exist ({env['KUBECONFIG']})"
                 if env.get("KUBECONFIG") else "no ~/.kube/config and not running in a cluster")
        raise NotFoundError(f"no kubeconfig found: {where}",
                            hint="pass --kubeconfig FILE or set KUBECONFIG")
    else:
        config = _from_kubeconfig(merged, paths, explicit, context, namespace, exec_timeout)
    if as_user or as_groups:
        config = dataclasses.replace(config, as_user=as_user or config.as_user,
                                     as_groups=tuple(as_groups) or config.as_groups)
    if (config.as_groups or config.as_uid) and not config.as_user:
        raise BadInputError("impersonating groups or a uid needs a user to impersonate too "
                            f"(user {config.user!r}, context {config.context})",
                            hint="add --as USER")
    return config


def _from_kubeconfig(merged: dict, paths: list[str], explicit: bool, context: str | None,
                     namespace: str | None, exec_timeout: float | None) -> ApiConfig:
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
    files = ":".join(paths)
    if not cluster.get("server"):
        raise BadInputError(f'cluster "{cluster_name}" in kubeconfig {files} has no server')
    ca_pem = _data_or_file(cluster, "certificate-authority", f"cluster {cluster_name!r}")
    tls = bool(ca_pem or user.get("client-certificate") or user.get("client-certificate-data")
               or cluster.get("insecure-skip-tls-verify"))
    server, said_scheme = server_url(cluster["server"], f'cluster "{cluster_name}" in '
                                                        f"kubeconfig {files}", tls)
    if ctx.get("namespace") and not namespace:
        problem = dns1123_label_problem(ctx["namespace"])
        if problem:
            raise BadInputError(f'context "{name}" in kubeconfig {files}: namespace '
                                f"{ctx['namespace']!r} {problem}",
                                hint="fix the context's namespace, or pass -n")
    proxy = cluster.get("proxy-url")
    if proxy and urlsplit(proxy).scheme not in ("http", "https", "socks5"):
        # client-go's clientcmd parseProxyURL (tools/clientcmd/helpers.go)
        raise BadInputError(f'cluster "{cluster_name}" in kubeconfig {files}: proxy-url '
                            f"{redact(proxy)!r} has the unsupported scheme "
                            f"{urlsplit(proxy).scheme!r}, must be http, https, or socks5",
                            hint="fix the cluster's proxy-url")
    creds = _credentials(user, f'user "{user_name}" in kubeconfig {files}', merged, name,
                         exec_timeout)
    if creds["token"] and server.startswith("http://") and not said_scheme:
        raise BadInputError(f'cluster "{cluster_name}" in kubeconfig {files}: server '
                            f"{redact(cluster['server'])!r} has no scheme, which means plain "
                            f"http here, and user \"{user_name}\" has a token",
                            hint="write https:// before it, or http:// to send the token in "
                                 "clear text")
    return ApiConfig(
        server=server, context=name,
        namespace=namespace or ctx.get("namespace") or "default",
        cluster=cluster_name, user=user_name, kubeconfig_paths=tuple(paths),
        explicit_kubeconfig=explicit,
        ca_pem=ca_pem,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"),
        proxy_url=cluster.get("proxy-url"),
        as_user=user.get("as") or None,
        as_groups=tuple(str(g) for g in user.get("as-groups") or ()),
        as_uid=user.get("as-uid") or None,
        **creds,
    )


def _credentials(user: dict, what: str, merged: dict, context: str,
                 exec_timeout: float | None) -> dict:
    token = user.get("token")
    if token:
        check_token(token, f"the token of {what}")
    elif user.get("tokenFile"):
        # client-go reads the whole file and trims the white space around it.
        data = _read_file(user["tokenFile"], f"token file of {what}")
        token = check_token(data.decode("utf-8", "replace").strip(),
                            f"the token file {user['tokenFile']} of {what}")
    creds = {
        "token": token or None,
        "client_cert_pem": _data_or_file(user, "client-certificate", what),
        "client_key_pem": _data_or_file(user, "client-key", what),
    }
    if not token and not creds["client_cert_pem"]:
        if isinstance(user.get("exec"), dict):
            from kubectl_mesh.kube.credplugin import PluginCredentials

            plugin = PluginCredentials(user["exec"], what, merged["clusters"].get(
                (merged["contexts"].get(context) or {}).get("cluster"), {}), exec_timeout)
            creds.update(plugin.current(), plugin=plugin)
        elif user.get("auth-provider"):
            raise _auth_provider_error(user, what)
        if creds.get("token"):
            check_token(creds["token"], f"the token the exec plugin of {what} "
                                        "returned")
    return creds


# The exec plugin that replaces each legacy auth-provider, and how to switch to it. kubectl
# removed gcp and azure in 1.26 (client-go plugin/pkg/client/auth/gcp/gcp_stub.go and
# azure/azure_stub.go: "The gcp auth plugin has been removed. Please use the
# "gke-gcloud-auth-plugin" ..."); oidc's replacement is kubelogin's `kubectl oidc-login`.
AUTH_PROVIDER_REPLACEMENTS = {
    "gcp": ("gke-gcloud-auth-plugin", "install it (gcloud components install "
                                      "gke-gcloud-auth-plugin) and run gcloud container "
                                      "clusters get-credentials CLUSTER again"),
    "azure": ("kubelogin", "install Azure/kubelogin and run kubelogin convert-kubeconfig "
                           "-l azurecli"),
    "oidc": ("kubelogin", "install int128/kubelogin (kubectl krew install oidc-login) and "
                          "run kubectl oidc-login setup to get the exec section"),
}


def _auth_provider_error(user: dict, what: str) -> BadInputError:
    """Legacy auth-provider credentials: one line naming the exec plugin that replaces them."""
    provider = user.get("auth-provider") or {}
    name = str(provider.get("name") or "") if isinstance(provider, dict) else ""
    plugin, how = AUTH_PROVIDER_REPLACEMENTS.get(
        name, ("an exec credential plugin", "ask your cluster's provider for one"))
    return BadInputError(f"{what} uses auth-provider {name or '(no name)'!r}, which kubectl-mesh "
                         f"does not run: use the exec credential plugin {plugin} instead",
                         hint=how)


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
        token=check_token(_read_file(os.path.join(sa_dir, "token"), "service account token")
                          .decode("utf-8", "replace").strip(),
                          f"the service account token {os.path.join(sa_dir, 'token')}"),
        ca_pem=_read_file(ca_file, "service account CA") if os.path.isfile(ca_file) else None,
    )
