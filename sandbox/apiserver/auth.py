"""Bearer-token authentication and a small deny-list RBAC table per token.

The table lives in a JSON file (`DIR/rbac.json`) so tests can change it while the sandbox
runs: `{"tokens": {"<token>": {"user": "name", "deny": ["create pods/portforward", ...]}}}`.
A deny entry is `<verb> <resource>[/<subresource>]`, optionally `@<namespace>`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import threading


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

    def check(self, user: User, verb: str, group: str, resource: str, namespace: str,
              name: str) -> None:
        from .server import ApiError
        denied = {f"{verb} {resource}", f"{verb} {resource}@{namespace}", f"* {resource}"}
        if user.deny & denied:
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            plural = resource.split("/")[0]
            subject = f'{plural} "{name}"' if name else plural
            group_part = f".{group}" if group and not name else ""
            raise ApiError(
                403, "Forbidden",
                f'{subject}{group_part} is forbidden: User "{user.name}" cannot {verb} resource '
                f'"{resource}" in API group "{group}"{where}',
                {"name": name, "group": group, "kind": plural} if name else {"group": group, "kind": plural})


def write_tokens(path: pathlib.Path, tokens: dict[str, dict]) -> None:
    """Atomically (re)write the token table."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"tokens": tokens}, indent=2))
    tmp.replace(path)
