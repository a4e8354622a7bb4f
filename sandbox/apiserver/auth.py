"""Bearer-token authentication and a small deny-list RBAC table per token.

The table lives in a JSON file (`DIR/rbac.json`) so tests can change it while the sandbox
runs: `{"tokens": {"<token>": {"user": "name", "deny": ["create pods/portforward", ...]}}}`.
A deny entry is `<verb> <resource>[/<subresource>]` (verb `*`: every verb; `* *`: everything),
optionally `@<namespace>` (`@` alone: the cluster scope only).

Impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`) is honoured like
the real API server's `WithImpersonation` filter
(staging/src/k8s.io/apiserver/pkg/endpoints/filters/impersonation/impersonation.go): groups or
a UID without a user are a 400 (`buildImpersonationRequests`); the caller needs the verb
`impersonate` on `users` (name = the user), on `groups` (name = each group) and on `uids` in
API group `authentication.k8s.io`, else a 403 naming that check; the request is then
authorized as the impersonated user: the rights of the table's entry with that user name, and
none at all for a name the table does not know (no bindings). Groups carry no rights here.

Everything not denied is allowed, as if granted by a ClusterRoleBinding; an `@<namespace>` deny
means the grant is RoleBindings in the other namespaces only. So a request at the cluster scope
(`kubectl get pods -A`) is denied by any namespace's deny of the same verb and resource: the
real RBAC authorizer checks a request without a namespace against ClusterRoleBindings alone,
never RoleBindings (`DefaultRuleResolver.VisitRulesFor`, pkg/registry/rbac/validation/rule.go,
used by `RBACAuthorizer.Authorize` in plugin/pkg/auth/authorizer/rbac/rbac.go).
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
                self._tokens = {tok: User(v.get("user", "unknown"), frozenset(v.get("deny", [])))
                                for tok, v in data.get("tokens", {}).items()}
                self._mtime = mtime
            return self._tokens

    def authenticate(self, header: str | None) -> User | None:
        if not header or not header.lower().startswith("bearer "):
            return None
        return self._load().get(header.split(None, 1)[1].strip())

    def impersonate(self, caller: User, headers) -> User:
        """The user a request acts as: `caller`, or whom its Impersonate-* headers name."""
        from .server import ApiError
        name = headers.get("Impersonate-User") or ""
        groups = headers.get_all("Impersonate-Group") or []
        uid = headers.get("Impersonate-Uid") or ""
        if not (name or groups or uid):
            return caller
        if not name:
            raise ApiError(400, "BadRequest", "requested impersonation of groups or a uid "
                                              "without impersonating a user")
        self.check(caller, "impersonate", "", "users", "", name)
        for group in groups:
            self.check(caller, "impersonate", "", "groups", "", group)
        if uid:
            self.check(caller, "impersonate", "authentication.k8s.io", "uids", "", uid)
        for known in self._load().values():
            if known.name == name:
                return known
        return User(name, frozenset({"* *"}))

    def check(self, user: User, verb: str, group: str, resource: str, namespace: str,
              name: str) -> None:
        from .server import ApiError
        if any(_denies(entry, verb, resource, namespace) for entry in user.deny):
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            plural = resource.split("/")[0]
            subject = f'{plural} "{name}"' if name else plural
            group_part = f".{group}" if group and not name else ""
            raise ApiError(
                403, "Forbidden",
                f'{subject}{group_part} is forbidden: User "{user.name}" cannot {verb} resource '
                f'"{resource}" in API group "{group}"{where}',
                {"name": name, "group": group, "kind": plural} if name else {"group": group, "kind": plural})


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
