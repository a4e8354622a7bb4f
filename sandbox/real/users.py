"""Users with rights taken away, on the real backend: what the API double's deny-list table
(`sandbox.apiserver.auth`) models, as RBAC objects on the real API server.

A deny entry is `<verb> <resource>[/<subresource>]` (verb `*`: every verb), optionally
`@<namespace>` (`@` alone: the cluster scope only), as in the double. RBAC grants only, so the
user gets everything else: a ClusterRole of every served resource (from discovery) with the
verbs no entry denies anywhere, bound cluster-wide; and, for each namespace, a Role with the
verbs denied only in other namespaces or only at the cluster scope (the double's "`@<ns>`
deny means the grant is RoleBindings in the other namespaces only"). A request without a
namespace is judged by ClusterRoleBindings alone (pkg/registry/rbac/validation/rule.go
`DefaultRuleResolver.VisitRulesFor`), so `kubectl get pods -A` is denied by any namespace's
deny, as on the double. The user is a client certificate from the cluster CA, named `user`."""

from __future__ import annotations

import hashlib
import json
import pathlib
import ssl
import urllib.error
import urllib.parse
import urllib.request

import yaml

from ..apiserver import pki
from ..credentials import write_private
from .controlplane import decode_body, kubeconfig_for

IMPERSONATION = (("", "users"), ("", "groups"), ("", "serviceaccounts"),
                 ("authentication.k8s.io", "uids"))


class Admin:
    """Requests as the cluster admin of a running real-backend state directory."""

    def __init__(self, state: pathlib.Path):
        self.state = state
        config = yaml.safe_load((state / "kubeconfig").read_text())
        self.server = config["clusters"][0]["cluster"]["server"]
        self.context = config["current-context"]
        pkidir = state / "pki"
        self._context = ssl.create_default_context(cafile=str(pkidir / "ca.crt"))
        self._context.load_cert_chain(str(pkidir / "admin.crt"), str(pkidir / "admin.key"))

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self._context, timeout=30) as r:
                return r.status, decode_body(r.read())
        except urllib.error.HTTPError as e:
            return e.code, decode_body(e.read())

    def put(self, collection: str, obj: dict) -> None:
        """Create `obj` in `collection`, or replace it."""
        code, body = self.request("POST", collection, obj)
        if code == 409:
            name = urllib.parse.quote(obj["metadata"]["name"], safe="")
            _, current = self.request("GET", f"{collection}/{name}")
            obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            code, body = self.request("PUT", f"{collection}/{name}", obj)
        if code >= 300:
            raise RuntimeError(f"{obj['kind']} {obj['metadata']['name']}: {body.get('message')}")

    def resources(self) -> list[tuple[str, str, tuple[str, ...], bool]]:
        """(group, resource, verbs, namespaced) of everything the server serves."""
        out = []
        _, groups = self.request("GET", "/apis")
        versions = [("", "/api/v1")] + [
            (g["name"], f"/apis/{g['preferredVersion']['groupVersion']}")
            for g in groups.get("groups") or []]
        for group, path in versions:
            code, body = self.request("GET", path)
            for r in body.get("resources") or [] if code == 200 else []:
                out.append((group, r["name"], tuple(r.get("verbs") or ()), r["namespaced"]))
        return out


def _parse(entry: str) -> tuple[str, str, str | None]:
    """`verb resource[@ns]` → (verb, resource, scope: None everywhere, "" cluster, or ns)."""
    verb, _, rest = entry.partition(" ")
    resource, at, scope = rest.partition("@")
    return verb, resource, (scope if at else None)


def _denied(deny: list[str], verb: str, resource: str, namespace: str | None,
            any_scope: bool = False) -> bool:
    for entry in deny:
        v, r, scope = _parse(entry)
        if v not in ("*", verb) or r not in ("*", resource):
            continue
        if any_scope or scope is None or scope == namespace or \
                (scope == "" and namespace is None):
            return True
    return False


def _rules(grants: dict[str, dict[str, set[str]]]) -> list[dict]:
    """RBAC rules from {group: {resource: verbs}}, resources with the same verbs together."""
    rules = []
    for group, by_resource in sorted(grants.items()):
        together: dict[tuple[str, ...], list[str]] = {}
        for resource, verbs in sorted(by_resource.items()):
            if verbs:
                together.setdefault(tuple(sorted(verbs)), []).append(resource)
        rules += [{"apiGroups": [group], "resources": resources, "verbs": list(verbs)}
                  for verbs, resources in together.items()]
    return rules


def add_user(state: pathlib.Path, user: str, deny: list[str]) -> pathlib.Path:
    """A user with every right but `deny` on the real backend of `state`; its kubeconfig
    `<state>/kubeconfig-<user>`."""
    admin = Admin(state)
    resources = admin.resources() + [(g, r, ("impersonate",), False) for g, r in IMPERSONATION]
    _, namespaces = admin.request("GET", "/api/v1/namespaces")
    names = [n["metadata"]["name"] for n in namespaces.get("items") or []]
    everywhere: dict[str, dict[str, set[str]]] = {}
    per_namespace: dict[str, dict[str, dict[str, set[str]]]] = {n: {} for n in names}
    for group, resource, verbs, namespaced in resources:
        everywhere.setdefault(group, {})[resource] = {
            v for v in verbs if not _denied(deny, v, resource, None, any_scope=namespaced)}
        if namespaced:
            for ns in names:
                extra = {v for v in verbs if not _denied(deny, v, resource, ns)} - \
                    everywhere[group][resource]
                if extra:
                    per_namespace[ns].setdefault(group, {})[resource] = extra
    role = f"sandbox-user-{user}"
    subject = [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    cluster_rules = _rules(everywhere) + [{"nonResourceURLs": ["*"], "verbs": ["get"]}]
    admin.put(f"{rbac}/clusterroles", {"apiVersion": "rbac.authorization.k8s.io/v1",
                                       "kind": "ClusterRole", "metadata": {"name": role},
                                       "rules": cluster_rules})
    admin.put(f"{rbac}/clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": role}, "subjects": subject,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}})
    for ns, grants in per_namespace.items():
        if not grants:
            continue
        admin.put(f"{rbac}/namespaces/{ns}/roles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": role, "namespace": ns}, "rules": _rules(grants)})
        admin.put(f"{rbac}/namespaces/{ns}/rolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": ns}, "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}})
    ca = pki.Authority.load(state / "pki")
    pair = ca.issue(f"user-{user}", user)
    return write_private(state / f"kubeconfig-{user}",
                         kubeconfig_for(admin.server, ca.pem, user, pair, name=admin.context))


def denied_user(deny: tuple[str, ...]) -> str:
    """The user `RunningSandbox.denied` swaps the admin for while `deny` holds."""
    return "sandbox-admin-denied-" + hashlib.sha256("\n".join(deny).encode()).hexdigest()[:10]
