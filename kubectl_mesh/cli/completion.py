"""Shell completion: the `kubectl_complete-mesh[-<command>]` executables (kubectl >= 1.26).

kubectl runs `kubectl_complete-mesh-routes <words typed so far> <word being completed>` and
shows what we print: one candidate per line, then a cobra directive line (`:4` = no file
completion). Flags come from the command's parser; the TARGET argument is completed with pod
(or `deploy/`, `svc/`, ... workload) names read from the API server with one lean HTTPS GET.
It runs on every <TAB>, so it imports neither the kubernetes client nor requests, reads the
kubeconfig itself (KUBECONFIG path list, --kubeconfig, --context, -n) and is silent on errors.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from kubectl_mesh.cli import BUILTINS, COMMANDS, Command, find_command
from kubectl_mesh.cli import common

NO_FILE_COMPLETION = 4  # cobra ShellCompDirectiveNoFileComp
FILE_COMPLETION = 0  # cobra ShellCompDirectiveDefault: let the shell complete file names
API_TIMEOUT = 2.0

# Kind prefixes users type for a TARGET (`deploy/x`), and the API collection behind each.
KIND_COLLECTIONS = {
    "pod": "api/v1/pods", "pods": "api/v1/pods", "po": "api/v1/pods",
    "svc": "api/v1/services", "service": "api/v1/services", "services": "api/v1/services",
    "deploy": "apis/apps/v1/deployments", "deployment": "apis/apps/v1/deployments",
    "deployments": "apis/apps/v1/deployments",
    "sts": "apis/apps/v1/statefulsets", "statefulset": "apis/apps/v1/statefulsets",
    "ds": "apis/apps/v1/daemonsets", "daemonset": "apis/apps/v1/daemonsets",
    "rs": "apis/apps/v1/replicasets", "replicaset": "apis/apps/v1/replicasets",
}

# (path, namespace or None) -> names; injectable so tests need no cluster.
NameLister = Callable[[str, "str | None"], Sequence[str]]


# ---- kubeconfig (a lean reader: kubectl's merge rules, no kubernetes client) ------------------


@dataclass(frozen=True)
class KubeContext:
    """What a request to the API server needs, resolved from the kubeconfig."""

    name: str
    server: str
    namespace: str = "default"
    ca_file: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    token: str | None = None
    cert_file: str | None = None
    cert_data: bytes | None = None
    key_file: str | None = None
    key_data: bytes | None = None


def kubeconfig_paths(explicit: str | None = None, env: Mapping[str, str] | None = None) -> list[str]:
    """--kubeconfig, else every file of the KUBECONFIG path list, else ~/.kube/config."""
    env = os.environ if env is None else env
    if explicit:
        return [os.path.expanduser(explicit)]
    if env.get("KUBECONFIG"):
        return [os.path.expanduser(p) for p in env["KUBECONFIG"].split(os.pathsep) if p]
    return [os.path.join(os.path.expanduser("~"), ".kube", "config")]


def load_kubeconfig(paths: Sequence[str]) -> dict:
    """Merge kubeconfig files as kubectl does: for each named cluster/user/context and for
    current-context, the first file that sets it wins; missing files are skipped. Entries
    keep the directory of their file, for relative certificate paths."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    merged: dict = {"clusters": {}, "users": {}, "contexts": {}, "current-context": None}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.load(f, Loader=loader)
        except FileNotFoundError:
            continue
        if not isinstance(doc, dict):
            continue
        base = os.path.dirname(os.path.abspath(path))
        for section, field in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for item in doc.get(section) or ():
                if isinstance(item, dict) and item.get("name") and item["name"] not in merged[section]:
                    merged[section][item["name"]] = (item.get(field) or {}, base)
        if not merged["current-context"] and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
    return merged


def resolve_context(merged: dict, context: str | None = None) -> KubeContext:
    """The server and credentials of `context` (default: current-context). KeyError if unknown."""
    import base64

    name = context or merged.get("current-context")
    if not name:
        raise KeyError("no current-context")
    ctx, _ = merged["contexts"][name]
    cluster, cluster_dir = merged["clusters"][ctx["cluster"]]
    user, user_dir = merged["users"].get(ctx.get("user"), ({}, ""))

    def path(entry: dict, key: str, base: str) -> str | None:
        value = entry.get(key)
        return os.path.join(base, os.path.expanduser(value)) if value else None

    def data(entry: dict, key: str) -> bytes | None:
        value = entry.get(key)
        return base64.b64decode(value) if value else None

    token = user.get("token")
    token_file = path(user, "tokenFile", user_dir)
    if not token and token_file:
        with open(token_file, encoding="utf-8") as f:
            token = f.read().strip()
    return KubeContext(
        name=name, server=cluster["server"], namespace=ctx.get("namespace") or "default",
        ca_file=path(cluster, "certificate-authority", cluster_dir),
        ca_data=data(cluster, "certificate-authority-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"), token=token,
        cert_file=path(user, "client-certificate", user_dir),
        cert_data=data(user, "client-certificate-data"),
        key_file=path(user, "client-key", user_dir), key_data=data(user, "client-key-data"),
    )


def api_get(ctx: KubeContext, path: str, timeout: float = API_TIMEOUT) -> dict:
    """GET `path` from the API server, decoded JSON. Raises OSError/ValueError on any failure."""
    import http.client
    import json
    import socket
    import urllib.parse

    url = urllib.parse.urlsplit(ctx.server)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if url.scheme == "https":
            sock = _ssl_context(ctx).wrap_socket(sock, server_hostname=ctx.tls_server_name or host)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock
        headers = {
            # Names are all we need: ask for metadata only; servers that cannot, send full JSON.
            "Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,"
                      "application/json",
            "User-Agent": "kubectl-mesh-completion",
        }
        if ctx.token:
            headers["Authorization"] = f"Bearer {ctx.token}"
        conn.request("GET", url.path.rstrip("/") + path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"GET {path}: HTTP {response.status}")
        return json.loads(body)
    finally:
        sock.close()


def _ssl_context(ctx: KubeContext):
    import ssl
    import tempfile

    context = ssl.create_default_context(
        cafile=ctx.ca_file, cadata=ctx.ca_data.decode() if ctx.ca_data else None)
    if ctx.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if ctx.cert_data or ctx.cert_file:
        # load_cert_chain wants files: inline data goes through a private temp dir, read at once.
        with tempfile.TemporaryDirectory() as tmp:
            def materialise(data: bytes | None, filename: str | None, name: str) -> str | None:
                if not data:
                    return filename
                target = os.path.join(tmp, name)
                with open(os.open(target, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
                    f.write(data)
                return target

            context.load_cert_chain(materialise(ctx.cert_data, ctx.cert_file, "cert.pem"),
                                    materialise(ctx.key_data, ctx.key_file, "key.pem"))
    return context


def cluster_lister(kubeconfig: str | None, context: str | None,
                   env: Mapping[str, str] | None = None) -> tuple[NameLister, str]:
    """A NameLister for the selected kubeconfig context, and that context's namespace."""
    ctx = resolve_context(load_kubeconfig(kubeconfig_paths(kubeconfig, env)), context)

    def list_names(collection: str, namespace: str | None) -> list[str]:
        group, _, resource = collection.rpartition("/")
        path = f"/{group}/namespaces/{namespace}/{resource}" if namespace else f"/{collection}"
        items = api_get(ctx, path + "?limit=500").get("items") or []
        return [item["metadata"]["name"] for item in items if item.get("metadata", {}).get("name")]

    return list_names, ctx.namespace


# ---- completing words ------------------------------------------------------------------------


def command_parser_for(command: Command) -> argparse.ArgumentParser:
    """The command's own parser (`build_parser`), else one with the common flags."""
    if command.is_installed():
        try:
            build = getattr(importlib.import_module(command.module), "build_parser", None)
            if build is not None:
                return build(common.prog_name(command.name))
        except Exception:  # noqa: BLE001 - completion must never fail loudly
            pass
    parser = common.command_parser(common.prog_name(command.name))
    common.add_cluster_flags(parser, all_namespaces=True)
    common.add_output_flag(parser)
    return parser


def complete_command(command: Command, args: Sequence[str], *, env: Mapping[str, str] | None = None,
                     lister_factory=cluster_lister) -> tuple[list[str], int]:
    """Candidates and directive for `kubectl mesh <command> <args>`; args[-1] is the partial word."""
    words, partial = list(args[:-1]), (args[-1] if args else "")
    parser = command_parser_for(command)
    options = {s: a for a in parser._actions for s in a.option_strings}  # noqa: SLF001
    typed: dict[str, str] = {}
    positionals: list[str] = []
    pending: argparse.Action | None = None
    for i, word in enumerate(words):
        if pending is not None:
            typed[pending.dest], pending = word, None
        elif word.startswith("-") and word != "-":
            name, eq, value = word.partition("=")
            if name not in options and not word.startswith("--") and len(word) > 2:
                name, eq, value = word[:2], "=", word[2:]  # -nfoo
            action = options.get(name)
            if action is not None and action.nargs != 0:
                if eq:
                    typed[action.dest] = value
                else:
                    pending = action
        else:
            positionals.append(word)

    def values_for(action: argparse.Action, prefix: str, value: str) -> tuple[list[str], int]:
        if action.dest == "kubeconfig":
            return [], FILE_COMPLETION
        if action.choices:
            names = [str(c) for c in action.choices]
        elif action.dest == "context":
            names = _quietly(lambda: sorted(load_kubeconfig(
                kubeconfig_paths(typed.get("kubeconfig"), env))["contexts"]))
        elif action.dest == "namespace":
            names = _quietly(lambda: _list(lister_factory, typed, env, "api/v1/namespaces", None))
        else:
            names = []
        return [prefix + n for n in names if n.startswith(value)], NO_FILE_COMPLETION

    if pending is not None:
        return values_for(pending, "", partial)
    if partial.startswith("--") and "=" in partial:
        name, _, value = partial.partition("=")
        action = options.get(name)
        if action is None or action.nargs == 0:
            return [], NO_FILE_COMPLETION
        return values_for(action, name + "=", value)
    if partial.startswith("-"):
        return sorted(s for s in options if s.startswith(partial)), NO_FILE_COMPLETION
    if command.takes_target and not positionals:
        return _quietly(lambda: _targets(lister_factory, typed, env, partial)), NO_FILE_COMPLETION
    return [], NO_FILE_COMPLETION


def _targets(lister_factory, typed: dict, env, partial: str) -> list[str]:
    kind, slash, name = partial.partition("/")
    if slash:
        collection = KIND_COLLECTIONS.get(kind.lower())
        if collection is None:
            return []
        return [f"{kind}/{n}" for n in sorted(_list(lister_factory, typed, env, collection, ...))
                if n.startswith(name)]
    return [n for n in sorted(_list(lister_factory, typed, env, "api/v1/pods", ...))
            if n.startswith(partial)]


def _list(lister_factory, typed: dict, env, collection: str, namespace) -> Sequence[str]:
    """List names; namespace `...` means the typed -n, else the context's namespace."""
    lister, context_namespace = lister_factory(typed.get("kubeconfig"), typed.get("context"), env)
    if namespace is ...:
        namespace = typed.get("namespace") or context_namespace
    return lister(collection, namespace)


def _quietly(fn: Callable[[], Sequence[str]]) -> list[str]:
    """Completion is best-effort: any failure (no kubeconfig, no cluster, 403) means no names."""
    try:
        return list(fn())
    except Exception:  # noqa: BLE001
        return []


def complete_mesh_words(args: Sequence[str], **kwargs) -> tuple[list[str], int]:
    """`kubectl mesh <args>`: command names first, then the chosen command's completion."""
    if len(args) <= 1:
        partial = args[0] if args else ""
        names = [c.name for c in COMMANDS if c.is_installed()] + [n for n, _ in BUILTINS]
        return [n for n in names if n.startswith(partial)], NO_FILE_COMPLETION
    if args[0] == "help" and len(args) == 2:
        return [c.name for c in COMMANDS if c.name.startswith(args[1])], NO_FILE_COMPLETION
    command = find_command(args[0])
    if command is None:
        return [], NO_FILE_COMPLETION
    return complete_command(command, args[1:], **kwargs)


def print_completion(candidates: Sequence[str], directive: int, out=None) -> int:
    out = sys.stdout if out is None else out
    out.write("".join(f"{c}\n" for c in candidates) + f":{directive}\n")
    return 0


def main_for(name: str | None, argv: Sequence[str] | None = None, stdout=None) -> int:
    """Body of `kubectl_complete-mesh[-<name>]`; prints candidates and the directive line."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command = find_command(name) if name else None
        if name and command is None:
            return print_completion([], NO_FILE_COMPLETION, stdout)
        result = complete_command(command, args) if command else complete_mesh_words(args)
    except Exception:  # noqa: BLE001 - never a traceback in the middle of a shell prompt
        result = ([], NO_FILE_COMPLETION)
    try:
        return print_completion(*result, stdout)
    except BrokenPipeError:
        return 0


def complete_mesh() -> int:
    return main_for(None)


def complete_sync() -> int:
    return main_for("sync")


def complete_routes() -> int:
    return main_for("routes")


def complete_listeners() -> int:
    return main_for("listeners")


def complete_clusters() -> int:
    return main_for("clusters")


def complete_endpoints() -> int:
    return main_for("endpoints")


def complete_secrets() -> int:
    return main_for("secrets")


def complete_loglevel() -> int:
    return main_for("loglevel")


def complete_sniff() -> int:
    return main_for("sniff")


def complete_accesslog() -> int:
    return main_for("accesslog")
