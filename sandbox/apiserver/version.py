"""Which Kubernetes minor version the API double behaves as, where real versions differ.

`<state>/kube-version` (text, e.g. `1.34`) is read at request time, so a test can switch a
running double; no file means 1.37. What depends on it:
- `/version`;
- authorization of streaming subresources: from 1.35 a WebSocket upgrade (a GET, so `get`)
  also needs `create` (k8s.io/kubernetes pkg/registry/core/pod/rest/subresources.go,
  `*REST.Connect` -> `ensureAuthorizedForVerb(ctx, r.Authorizer, "create")`, feature gate
  AuthorizePodWebsocketUpgradeCreatePermission, beta and on by default from 1.35 in
  pkg/features/kube_features.go);
- impersonation: from 1.36 the constrained modes before the legacy one (k8s.io/apiserver
  pkg/features/kube_features.go ConstrainedImpersonation, beta and on by default from 1.36;
  `auth.Authorizer.impersonate`).
"""

from __future__ import annotations

import pathlib

FILE_NAME = "kube-version"
DEFAULT = (1, 37)


class ServedVersion:
    def __init__(self, state_dir: pathlib.Path | None):
        self.path = state_dir / FILE_NAME if state_dir else None

    def get(self) -> tuple[int, int]:
        if self.path is None:
            return DEFAULT
        try:
            major, minor = self.path.read_text().strip().split(".")[:2]
            return int(major), int(minor)
        except (OSError, ValueError):
            return DEFAULT

    def info(self) -> dict:
        major, minor = self.get()
        return {"major": str(major), "minor": str(minor), "gitVersion": f"v{major}.{minor}.1-sandbox",
                "gitCommit": "0000000", "gitTreeState": "clean", "buildDate": "2026-09-01T00:00:00Z",
                "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"}

    def upgrade_needs_create(self) -> bool:
        return self.get() >= (1, 35)

    def constrained_impersonation(self) -> bool:
        return self.get() >= (1, 36)
