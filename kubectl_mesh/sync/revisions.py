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


def webhook_xds_address(api, revision: str | None) -> tuple[str, str] | None:
    """(webhook configuration name, HOST:PORT) of a control plane that runs outside the
    cluster, from the injection URL of its revision's webhook (`clientConfig.url`; port 443 if
    none), as istioctl finds one when no istiod pod runs (istioctl/pkg/multixds/gather.go
    `getXdsAddressFromWebhooks`: selector `istio.io/rev=<rev>,!istio.io/tag`; the revision
    defaults to the `default` tag's, else `default`). None: no such webhook, or no right to
    list them."""
    from urllib.parse import urlsplit

    if not revision:
        revision = resolve_revision(api, "default") or "default"
    try:
        hooks = api.list_resource("mutatingwebhookconfigurations",
                                  label_selector=f"{REVISION_LABEL}={revision},!{TAG_LABEL}")
    except ForbiddenError:
        return None
    for config in sorted(hooks, key=lambda h: h.get("metadata", {}).get("name", "")):
        for hook in config.get("webhooks") or []:
            url = (hook.get("clientConfig") or {}).get("url")
            if not isinstance(url, str) or not url:
                continue
            try:
                parts = urlsplit(url)
                host, port = parts.hostname, parts.port or 443
            except ValueError:
                continue
            if host:
                address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                return config["metadata"]["name"], address
    return None
