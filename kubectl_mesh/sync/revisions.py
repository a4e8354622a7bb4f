"""Revision tags: `--revision prod` where `prod` is a tag of revision `1-28` (`istioctl tag
set prod --revision 1-28`).

A tag is a MutatingWebhookConfiguration labelled `istio.io/tag=<tag>` whose `istio.io/rev`
label is the revision it points at (istioctl/pkg/tag/util.go `GetWebhooksWithTag`,
`GetWebhookRevision`; pkg/revisions/tag_watcher.go). A name no tag webhook carries is taken
as a revision.
"""

from __future__ import annotations

from typing import IO

from kubectl_mesh.errors import BadInputError, ForbiddenError

TAG_LABEL = "istio.io/tag"
REVISION_LABEL = "istio.io/rev"


def resolve_revision(api, name: str | None, stderr: IO[str] | None = None) -> str | None:
    """The revision `name` means: the one its tag webhooks point at, else `name` itself.
    Says on stderr when a tag was followed. Without the right to list webhooks, `name` is
    taken as a revision (a tag then finds no istiod, and that error names the label)."""
    if not name:
        return name
    try:
        hooks = api.list_resource("mutatingwebhookconfigurations",
                                  label_selector=f"{TAG_LABEL}={name}")
    except ForbiddenError:
        return name
    revisions = sorted({(h.get("metadata", {}).get("labels") or {}).get(REVISION_LABEL, "")
                        for h in hooks} - {""})
    if not revisions:
        return name
    if len(revisions) > 1:
        raise BadInputError(f"revision tag {name} points at several revisions "
                            f"({', '.join(revisions)})",
                            hint=f"kubectl get mutatingwebhookconfigurations -l "
                                 f"{TAG_LABEL}={name} -L {REVISION_LABEL}")
    if stderr is not None:
        print(f"revision tag {name} → revision {revisions[0]}", file=stderr)
    return revisions[0]
