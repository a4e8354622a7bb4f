"""Bearer-token authentication and a small deny-list RBAC table per token.

The table lives in a JSON file (`DIR/rbac.json`) so tests can change it while the sandbox
runs: `{"tokens": {"<token>": {"user": "name", "deny": ["create pods/portforward", ...]}}}`.
A deny entry is `<verb> <resource>[/<subresource>]` (verb `*`: every verb; `* *`: everything),
optionally `@<namespace>` (`@` alone: the cluster scope only).

Impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`) is judged as the real
API server judges it (k8s.io/apiserver pkg/endpoints/filters/impersonation): groups or a UID
without a user are a 400. From 1.36 (feature gate ConstrainedImpersonation, beta and on by
default: pkg/features/kube_features.go) the constrained modes come first
(constrained_impersonation.go `getImpersonatedUser`, mode.go `allImpersonationModes`): for a
node user `system:node:<n>` alone `arbitrary-node`, for a service account alone `serviceaccount`,
for any other user `user-info`; each needs `impersonate-on:<mode>:<verb>` on what the request
asks (its verb, resource, namespace, name: request/requestinfo.go `NewRequestInfo`), then
`impersonate:<mode>` on `users` (or `nodes`, `serviceaccounts`), `uids` and `groups` in API
group `authentication.k8s.io`. Then the legacy mode (before 1.36 the only one): `impersonate`
on `users` (a service account: `serviceaccounts` in its namespace), `uids`
(`authentication.k8s.io`) and `groups`, in that order. The first mode that allows it wins;
when none does, the 403 is the first mode's refusal. The request is then authorized as the
impersonated user: the rights of the table's entry with that user name, and none at all for a
name the table does not know (no bindings). Groups carry no rights here.

Everything not denied is allowed, as if granted by a ClusterRoleBinding; an `@<namespace>` deny
means the grant is RoleBindings in the other namespaces only. So a request at the cluster scope
(`kubectl get pods -A`) is denied by any namespace's deny of the same verb and resource: the
real RBAC authorizer checks a request without a namespace against ClusterRoleBindings alone,
never RoleBindings (`DefaultRuleResolver.VisitRulesFor`, pkg/registry/rbac/validation/rule.go,
used by `RBACAuthorizer.Authorize` in plugin/pkg/auth/authorizer/rbac/rbac.go).

The verbs no discovery document lists (`impersonate-on:<mode>:<verb>`, `impersonate:<mode>`)
are granted only to an entry with `"all_verbs": true` – the sandbox's admin, as system:masters
holds them on a real API server; `sandbox.real.users` grants a user discovery's verbs and
`impersonate`, never these.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import threading

from ..credentials import write_private


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    deny: frozenset[str]
    all_verbs: bool = False


@dataclasses.dataclass(frozen=True)
class Attributes:
    """What a request asks, as the authorizer sees it (k8s.io/apiserver
    pkg/endpoints/request/requestinfo.go `RequestInfoFactory.NewRequestInfo`)."""
    verb: str
    path: str
    is_resource: bool = False
    group: str = ""
    resource: str = ""  # with `/<subresource>`
    namespace: str = ""
    name: str = ""


def request_attributes(method: str, path: str, query: dict[str, list[str]]) -> Attributes:
    """The attributes of a request to `path`: a resource request under /api/v1 or
    /apis/<group>/<version>, else a non-resource one (verb: the method in lower case)."""
    parts = [p for p in path.strip("/").split("/") if p]
    plain = Attributes(verb=method.lower(), path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return plain
    group, rest = ("", parts[1:]) if parts[0] == "api" else (parts[1], parts[2:])
    if parts[0] == "apis" and len(rest) < 2:
        return plain
    rest = rest[1:]  # the version
    via_prefix = rest[0] in ("proxy", "watch")
    if via_prefix:
        verb, rest = rest[0], rest[1:]
    else:
        verb = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete"}.get(method, "")
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    if len(rest) > 2 and verb != "proxy":
        resource += "/" + rest[2]
    if not name and verb == "get":
        watch = (query.get("watch") or [""])[0].lower()
        verb = "watch" if watch not in ("", "false", "0") else "list"
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb=verb, path=path, is_resource=True, group=group, resource=resource,
                      namespace=namespace, name=name)


def _constrained(verb: str) -> bool:
    return verb.startswith(("impersonate-on:", "impersonate:"))


def _node_name(username: str) -> str | None:
    name = username.removeprefix("system:node:")
    return name if name != username and name else None


def _service_account(username: str) -> tuple[str, str] | None:
    parts = username.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"] and all(parts[2:]):
        return parts[2], parts[3]
    return None


class Authorizer:
    def __init__(self, path: pathlib.Path):
        self.path = path
        self._lock = threading.Lock()
        self._mtime = None
        self._tokens: dict[str, User] = {}

    def _load(self) -> dict[str, User]:
        with self._lock:
            try:
                mtime = os.stat(self.path).st_mtime_ns
            except FileNotFoundError:
                return {}
            if mtime != self._mtime:
                data = json.loads(self.path.read_text())
                self._tokens = {tok: User(v.get("user", "unknown"), frozenset(v.get("deny", [])),
                                          bool(v.get("all_verbs")))
                                for tok, v in data.get("tokens", {}).items()}
                self._mtime = mtime
            return self._tokens

    def authenticate(self, header: str | None) -> User | None:
        if not header or not header.lower().startswith("bearer "):
            return None
        return self._load().get(header.split(None, 1)[1].strip())

    def impersonate(self, caller: User, headers, request: Attributes,
                    constrained: bool = True) -> User:
        """The user a request acts as: `caller`, or whom its Impersonate-* headers name, if
        `caller` may impersonate it for `request` (constrained modes first when
        `constrained`, then the legacy one)."""
        from .server import ApiError
        name = headers.get("Impersonate-User") or ""
        groups = headers.get_all("Impersonate-Group") or []
        uid = headers.get("Impersonate-Uid") or ""
        if not (name or groups or uid):
            return caller
        if not name:
            raise ApiError(400, "BadRequest", "requested impersonation of groups or a uid "
                                              "without impersonating a user")
        modes = []
        if constrained:
            only_name = not (groups or uid)
            if _node_name(name):
                modes += ["arbitrary-node"] if only_name else []
            elif _service_account(name):
                modes += ["serviceaccount"] if only_name else []
            else:
                modes.append("user-info")
        refused = None
        for mode in modes:
            try:
                self.authorize(caller, dataclasses.replace(
                    request, verb=f"impersonate-on:{mode}:{request.verb}"))
                self._authorize_wanted(caller, f"impersonate:{mode}", name, groups, uid)
                break
            except ApiError as e:
                refused = refused or e
        else:
            try:
                self._authorize_wanted(caller, "impersonate", name, groups, uid)
            except ApiError as e:
                raise refused or e
        for known in self._load().values():
            if known.name == name:
                return known
        return User(name, frozenset({"* *"}))

    def _authorize_wanted(self, caller: User, verb: str, name: str, groups: list[str],
                          uid: str) -> None:
        """mode.go `impersonationModeState.check`: the user name, the UID, then each group;
        the constrained modes ask in API group authentication.k8s.io, the legacy one in core."""
        group = "authentication.k8s.io" if _constrained(verb) else ""
        target = Attributes(verb=verb, path="", is_resource=True, group=group,
                            resource="users", name=name)
        if (node := _node_name(name)) and _constrained(verb):
            target = dataclasses.replace(target, resource="nodes", name=node)
        elif account := _service_account(name):
            target = dataclasses.replace(target, resource="serviceaccounts",
                                         namespace=account[0], name=account[1])
        self.authorize(caller, target)
        if uid:
            self.authorize(caller, Attributes(verb=verb, path="", is_resource=True,
                                              group="authentication.k8s.io", resource="uids",
                                              name=uid))
        for g in groups:
            self.authorize(caller, Attributes(verb=verb, path="", is_resource=True, group=group,
                                              resource="groups", name=g))

    def check(self, user: User, verb: str, group: str, resource: str, namespace: str,
              name: str) -> None:
        self.authorize(user, Attributes(verb=verb, path="", is_resource=True, group=group,
                                        resource=resource, namespace=namespace, name=name))

    def authorize(self, user: User, request: Attributes) -> None:
        """Nothing if `user` may do `request`, else the API server's 403
        (handlers/responsewriters/errors.go `ForbiddenStatusError`, `forbiddenMessage`)."""
        from .server import ApiError
        if _constrained(request.verb):
            allowed = user.all_verbs
        else:
            allowed = not request.is_resource or not any(
                _denies(entry, request.verb, request.resource, request.namespace)
                for entry in user.deny)
        if allowed:
            return
        if not request.is_resource:
            raise ApiError(403, "Forbidden", f'forbidden: User "{user.name}" cannot '
                                             f'{request.verb} path "{request.path}"', {})
        where = (f' in the namespace "{request.namespace}"' if request.namespace
                 else " at the cluster scope")
        plural = request.resource.split("/")[0]
        qualified = f"{plural}.{request.group}" if request.group else plural
        subject = f'{qualified} "{request.name}"' if request.name else qualified
        raise ApiError(
            403, "Forbidden",
            f'{subject} is forbidden: User "{user.name}" cannot {request.verb} resource '
            f'"{request.resource}" in API group "{request.group}"{where}',
            {"name": request.name, "group": request.group, "kind": plural} if request.name
            else {"group": request.group, "kind": plural})


def _denies(entry: str, verb: str, resource: str, namespace: str) -> bool:
    """Whether the deny entry `<verb> <resource>[@<namespace>]` covers this request
    (`namespace` "" is the cluster scope)."""
    entry_verb, _, target = entry.partition(" ")
    entry_resource, scoped, entry_namespace = target.partition("@")
    if entry_verb not in (verb, "*") or entry_resource not in (resource, "*"):
        return False
    # no namespace: denied everywhere; a cluster-scope request: denied by any namespace's deny
    return not scoped or not namespace or entry_namespace == namespace


def write_tokens(path: pathlib.Path, tokens: dict[str, dict]) -> None:
    """Atomically (re)write the token table, readable by its owner only (it holds tokens)."""
    write_private(path, json.dumps({"tokens": tokens}, indent=2))
