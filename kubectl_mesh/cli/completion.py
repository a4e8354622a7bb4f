"""Shell completion: the `kubectl_complete-mesh[-<command>]` executables (kubectl >= 1.26).

kubectl runs `kubectl_complete-mesh-routes <words typed so far> <word being completed>` and
shows what we print: one candidate per line, then a cobra directive line (`:4` = no file
completion). Flags come from the command's parser; the TARGET argument is completed with pod
(or `deploy/`, `svc/`, ... workload) names read from the API server with one GET.
It runs on every <TAB>, so it imports no kubernetes client: the context comes from
`kubectl_mesh.kube.kubeconfig` (the commands' own reader: KUBECONFIG path list,
--kubeconfig, --context, -n), the GET is the commands' own API client (`kube.api.KubeApi`:
its proxy policy, TLS and credentials; `requests` only behind a proxy), and errors are silent.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, Mapping, Sequence

from kubectl_mesh.cli import BUILTINS, COMMANDS, Command, find_command
from kubectl_mesh.cli import common

NO_FILE_COMPLETION = 4  # cobra ShellCompDirectiveNoFileComp
NO_SPACE = 2  # cobra ShellCompDirectiveNoSpace: the word goes on (`http:` then a level)
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


# ---- the cluster: kubectl_mesh.kube.kubeconfig for the context, one GET of the API client --


def cluster_lister(kubeconfig: str | None, context: str | None,
                   env: Mapping[str, str] | None = None) -> tuple[NameLister, str]:
    """A NameLister for the selected kubeconfig context, and that context's namespace.

    The context is resolved by the commands' own `load_config` (KUBECONFIG list merge, relative
    paths, tokenFile, exec credentials); any MeshError it raises makes completion quiet.
    """
    from kubectl_mesh.kube.kubeconfig import load_config

    config = load_config(_expand(kubeconfig), context, environ=env)

    def list_names(collection: str, namespace: str | None) -> list[str]:
        from kubectl_mesh.kube.names import dns1123_label_problem

        if namespace and dns1123_label_problem(namespace):
            return []  # no namespace has that name; it must not reach the request path
        group, _, resource = collection.rpartition("/")
        path = f"/{group}/namespaces/{namespace}/{resource}" if namespace else f"/{collection}"
        items = api_get_json(config, path).get("items") or []
        return [item["metadata"]["name"] for item in items if item.get("metadata", {}).get("name")]

    return list_names, config.namespace


def context_names(kubeconfig: str | None, env: Mapping[str, str] | None = None) -> list[str]:
    """The context names of the merged kubeconfig files (--kubeconfig, else KUBECONFIG, ...)."""
    from kubectl_mesh.kube.kubeconfig import kubeconfig_paths, merge_kubeconfigs, read_kubeconfig

    paths, _ = kubeconfig_paths(_expand(kubeconfig), os.environ if env is None else env)
    return sorted(str(n) for n in merge_kubeconfigs([read_kubeconfig(p) for p in paths])["contexts"])


def _expand(path: str | None) -> str | None:
    # The shell does not expand `~` in the words it hands to a completer.
    return os.path.expanduser(path) if path else path


def api_get_json(config, path: str, timeout: float = API_TIMEOUT) -> dict:
    """GET `path` from `config`'s API server (an `ApiConfig`), decoded JSON; a MeshError on
    any failure (the caller stays quiet)."""
    from kubectl_mesh.kube.api import KubeApi

    # Names are all we need: ask for metadata only; servers that cannot, send full JSON.
    headers = {"Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,"
                         "application/json",
               "User-Agent": "kubectl-mesh-completion"}
    with KubeApi(config, timeout=timeout) as api:
        return api.request("GET", path, params={"limit": 500}, headers=headers) or {}


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
            names = _quietly(lambda: context_names(typed.get("kubeconfig"), env))
        elif action.dest == "namespace":
            names = _quietly(lambda: _list(lister_factory, typed, env, "api/v1/namespaces", None))
        elif action.dest == "level":
            return _level_spec(prefix, value)
        elif action.dest == "flags":
            return _list_items(prefix, value, _response_flags()), NO_FILE_COMPLETION
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
    if command.takes_files:
        return [], FILE_COMPLETION
    if command.kind_first:
        if not positionals:  # the kind word: the first positional's choices
            kinds = next((a.choices for a in parser._actions  # noqa: SLF001
                          if not a.option_strings and a.choices), ())
            return [k for k in kinds if k.startswith(partial)], NO_FILE_COMPLETION
        if len(positionals) == 1 and "/" not in partial and \
                KIND_COLLECTIONS.get(positionals[0].lower()) == "api/v1/services":
            return _quietly(lambda: [n[len("svc/"):] for n in _targets(
                lister_factory, typed, env, "svc/" + partial)]), NO_FILE_COMPLETION
        positionals = positionals[1:]
    if command.takes_target and not positionals:
        words = [w for w in command.target_words if w.startswith(partial)]
        return words + _quietly(lambda: _targets(lister_factory, typed, env, partial)), \
            NO_FILE_COMPLETION
    if command.takes_admin_path and len(positionals) == 1:
        from kubectl_mesh.adminapi.endpoints import READS, WRITES
        return sorted(p for p in (*READS, *WRITES) if p.startswith(partial)), NO_FILE_COMPLETION
    return [], NO_FILE_COMPLETION


def _list_items(prefix: str, value: str, names: Sequence[str]) -> list[str]:
    """Candidates for the last item of a comma-separated value (`UT,U` → `UT,UH`, ...),
    leaving out the items already given."""
    done, _, last = value.rpartition(",")
    given = set(done.split(",")) if done else set()
    head = prefix + (done + "," if done else "")
    return [head + n for n in names if n.startswith(last) and n not in given]


def _level_spec(prefix: str, value: str) -> tuple[list[str], int]:
    """`--level`: a level for every logger, or LOGGER:LEVEL items (Envoy's logger names)."""
    from kubectl_mesh.loglevel.levels import ENVOY_LOGGERS, LEVELS
    done, _, last = value.rpartition(",")
    head = prefix + (done + "," if done else "")
    logger, colon, level = last.partition(":")
    if colon:
        return [f"{head}{logger}:{n}" for n in LEVELS if n.startswith(level)], \
            NO_FILE_COMPLETION
    loggers = [f"{head}{n}:" for n in ENVOY_LOGGERS if n.startswith(last)]
    levels = [] if done else [head + n for n in LEVELS if n.startswith(last)]
    return levels + loggers, NO_FILE_COMPLETION | (NO_SPACE if loggers and not levels else 0)


def _response_flags() -> list[str]:
    from kubectl_mesh.accesslog.flags import FLAGS
    return list(FLAGS)


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


def complete_analyze() -> int:
    return main_for("analyze")


def complete_describe() -> int:
    return main_for("describe")


def complete_bootstrap() -> int:
    return main_for("bootstrap")


def complete_all() -> int:
    return main_for("all")


def complete_ecds() -> int:
    return main_for("ecds")


def complete_rootca_compare() -> int:
    return main_for("rootca-compare")


def complete_stats() -> int:
    return main_for("stats")


def complete_dashboard() -> int:
    return main_for("dashboard")


def complete_admin() -> int:
    return main_for("admin")
