"""What a kubelet checks before it starts a container: can the image be pulled, and may it
run as the user it would run as. The sandbox's answers, for pods and ephemeral containers.

Pulling (pkg/kubelet/images/image_manager.go `EnsureImageExists`): an image listed in
`<state>/missing-images` (one reference a line, `#` comments; re-read at each start, so a
test can change it on a running sandbox) cannot be pulled: the container waits with reason
`ErrImagePull` and containerd's message, then, while the kubelet backs off,
`ImagePullBackOff` with `Back-off pulling image "<image>": ErrImagePull: <message>` (the
kubelet keeps the last pull error in `prevPullErrMsg`). A line without a tag or digest means
every tag of that repository. The sandbox does not pull again once it backed off.

The user an image runs as (its config's `User`, which `getImageUser` reads through the CRI):
`<state>/image-users` lines `IMAGE USER` (a uid, or a name), else the rule: Istio's proxyv2
and pilot 1337 (their Dockerfiles' `USER 1337:1337`), a distroless `:nonroot`/`-nonroot` tag
65532, any other image root (0), as images without `USER` run.

runAsNonRoot (pkg/kubelet/kuberuntime/security_context_others.go `verifyRunAsNonRoot`, called
by kuberuntime_container.go `generateContainerConfig`; an error there is the waiting reason
`CreateContainerConfigError`, `ErrCreateContainerConfig`): the effective security context -
the container's fields over the pod's (pkg/securitycontext/util.go
`DetermineEffectiveSecurityContext`; an ephemeral container inherits the pod's like any
other) - with `runAsNonRoot: true` refuses `runAsUser: 0`, and, without a runAsUser, an image
user 0 or a non-numeric one, with the kubelet's messages.
"""

from __future__ import annotations

import pathlib

MISSING_FILE = "missing-images"
USERS_FILE = "image-users"
# pilot/docker/Dockerfile.proxyv2 and Dockerfile.pilot: `USER 1337:1337`; `testing/` is the
# hub of a dev build (global.hub unset)
DEFAULT_USERS = (("istio/proxyv2", "1337"), ("istio/pilot", "1337"), ("testing/pilot", "1337"))


def _normalise(image: str) -> tuple[str, str]:
    """(`docker.io/library/busybox`, `1.36`) for `busybox:1.36`; the tag "" when none is given
    (a digest counts as the tag)."""
    image = image.strip()
    name, _, digest = image.partition("@")
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    if digest:
        tag = "@" + digest
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if "/" in name else f"library/{name}")
    return name, tag


def _lines(path: pathlib.Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError:
        return []
    return [line.split("#", 1)[0].strip() for line in text.splitlines()
            if line.split("#", 1)[0].strip()]


class Images:
    """The sandbox's registry and image configs, read from the state directory."""

    def __init__(self, state_dir: pathlib.Path | None):
        self.state_dir = state_dir

    def missing(self, image: str) -> bool:
        if self.state_dir is None:
            return False
        name, tag = _normalise(image)
        for line in _lines(self.state_dir / MISSING_FILE):
            listed_name, listed_tag = _normalise(line)
            if listed_name == name and (not listed_tag or listed_tag == (tag or "latest")):
                return True
        return False

    def user(self, image: str) -> str:
        """The image's `User`: a uid or a name ("0": root)."""
        name, tag = _normalise(image)
        if self.state_dir is not None:
            for line in _lines(self.state_dir / USERS_FILE):
                listed, _, user = line.partition(" ")
                listed_name, listed_tag = _normalise(listed)
                if listed_name == name and (not listed_tag or listed_tag == tag) and user.strip():
                    return user.strip().split(":", 1)[0]  # `USER uid:gid`: the uid
        for repository, user in DEFAULT_USERS:
            if name.endswith("/" + repository):
                return user
        if "distroless" in name and tag.endswith("nonroot"):
            return "65532"
        return "0"


def pull_error(image: str) -> str:
    """containerd's message for a reference the registry does not have."""
    name, tag = _normalise(image)
    ref = f"{name}{tag if tag.startswith('@') else ':' + (tag or 'latest')}"
    return (f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": '
            f"{ref}: not found")


def back_off_message(image: str, error: str) -> str:
    """image_manager.go: `Back-off pulling image %q` + `: ` + prevPullErrMsg."""
    return f'Back-off pulling image "{image}": ErrImagePull: {error}'


def _effective(pod_spec: dict, container: dict, key: str):
    value = (container.get("securityContext") or {}).get(key)
    if value is None:
        value = (pod_spec.get("securityContext") or {}).get(key)
    return value


def run_as_non_root_error(pod: dict, container: dict, image_user: str) -> str | None:
    """verifyRunAsNonRoot's error for `container` of `pod` (JSON), or None."""
    spec = pod.get("spec") or {}
    if not _effective(spec, container, "runAsNonRoot"):
        return None
    meta = pod.get("metadata") or {}
    where = (f'(pod: "{meta.get("name")}_{meta.get("namespace")}({meta.get("uid")})", '
             f'container: {container.get("name")})')
    run_as_user = _effective(spec, container, "runAsUser")
    if run_as_user is not None:
        return f"container's runAsUser breaks non-root policy {where}" if int(run_as_user) == 0 \
            else None
    if not image_user.isdigit():
        return (f"container has runAsNonRoot and image has non-numeric user ({image_user}), "
                f"cannot verify user is non-root {where}")
    if int(image_user) == 0:
        return f"container has runAsNonRoot and image will run as root {where}"
    return None
