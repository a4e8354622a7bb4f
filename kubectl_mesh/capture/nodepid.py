"""Node mode: the host PID of a container, found from a privileged hostPID debug pod.

A kubelet reports `containerID: <runtime>://<hex id>`; every runtime puts the container's
processes in a cgroup whose path names that id:

    containerd, systemd driver  .../kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope
    CRI-O, systemd driver       .../crio-<id>.scope   (not crio-conmon-<id>.scope: the monitor)
    docker / podman             .../docker-<id>.scope, .../libpod-<id>.scope
    any, cgroupfs driver        /kubepods/besteffort/pod<uid>/<id>  (crio-<id> for CRI-O)

A fixed script, exec'd in the debug pod (which sees the node's /proc), lists the PIDs whose
`/proc/PID/cgroup` has such a path component; the lowest is the container's init. The id is
validated here and passed as a positional parameter - never part of the script text - and
the script validates it again before it goes into grep's pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubectl_mesh.errors import (
    BadInputError,
    ForbiddenError,
    MeshError,
    NotFoundError,
    UnreachableError,
)
from kubectl_mesh.kube.execstream import ExecFailed, open_exec

HEX_ID = re.compile(r"[0-9a-f]{12,128}")  # fullmatch: "$" would allow a trailing newline
RUNTIME_PREFIX = re.compile(r"^([a-z0-9][a-z0-9.+-]*)://")

# $1: the container id (hex); $2: the proc root (tests), default /proc. Prints one PID a line.
SCRIPT = r"""
id=$1
proc=${2:-/proc}
case $id in
  ''|*[!0-9a-f]*) echo "not a hex container id: $id" >&2; exit 2 ;;
esac
grep -lsE -- "/(cri-containerd-|crio-|docker-|libpod-)?$id(\.scope)?(/|\$)" "$proc"/[0-9]*/cgroup |
while IFS= read -r path; do
  path=${path%/cgroup}
  echo "${path##*/}"
done
"""


@dataclass(frozen=True)
class ContainerId:
    """`containerd://4f1c...` split into runtime and the hex id the cgroup paths carry."""

    runtime: str
    hex: str

    @classmethod
    def parse(cls, raw: str) -> ContainerId:
        """ValueError unless `raw` is `[<runtime>://]<12-128 lowercase hex digits>`."""
        match = RUNTIME_PREFIX.match(raw)
        runtime, rest = (match[1], raw[match.end():]) if match else ("", raw)
        if not HEX_ID.fullmatch(rest):
            raise ValueError(f"{raw!r} is not <runtime>://<12-128 lowercase hex digits>")
        return cls(runtime, rest)

    def __str__(self) -> str:
        return f"{self.runtime}://{self.hex}" if self.runtime else self.hex


def script_argv(container_id: ContainerId) -> list[str]:
    """The exec argv: the id is `$1` of a fixed script, never interpolated into it."""
    return ["sh", "-c", SCRIPT, "sh", container_id.hex]


def parse_pids(output: str) -> list[int]:
    """The script's output, ascending (the container's init first)."""
    return sorted({int(line) for line in output.split() if line.isdigit()})


def running_container_id(pod: dict, container: str) -> ContainerId:
    """The id of `container`'s current run; an error saying why node mode cannot use it."""
    meta = pod.get("metadata") or {}
    ref = f"{meta.get('name')}.{meta.get('namespace')}"
    status_of = pod.get("status") or {}
    # A native sidecar (istio-proxy as an init container with restartPolicy Always, what Istio
    # injects when every kubelet is >= 1.33) reports in initContainerStatuses.
    statuses = (status_of.get("containerStatuses") or []) + \
        (status_of.get("initContainerStatuses") or [])
    status = next((s for s in statuses if s.get("name") == container), None)
    state = (status or {}).get("state") or {}
    raw = (status or {}).get("containerID") or ""
    if "running" not in state or not raw:
        how = next(iter(state), "not started")
        reason = (state.get(how) or {}).get("reason")
        raise UnreachableError(
            f"container {container} of pod {ref} is not running ({how}"
            f"{': ' + reason if reason else ''}{'' if raw else ', no containerID yet'}), so it "
            "has no process to capture in",
            hint=f"wait until it runs (kubectl get pod {meta.get('name')} -n "
                 f"{meta.get('namespace')}), then retry")
    try:
        return ContainerId.parse(raw)
    except ValueError:
        raise BadInputError(f"container {container} of pod {ref} has containerID {raw!r}, not "
                            "<runtime>://<hex id>: node mode cannot look up its process",
                            hint="use --mode ephemeral") from None


def find_pid(api, namespace: str, debug_pod: str, debug_container: str,
             container_id: ContainerId, what: str, timeout: float | None, *,
             notices=None) -> int:
    """The lowest host PID in `container_id`'s cgroup, seen from the hostPID debug pod."""
    out, err = bytearray(), bytearray()
    try:
        stream = open_exec(api.config, namespace, debug_pod, script_argv(container_id),
                           container=debug_container, timeout=timeout, notices=notices)
        try:  # kubectl exec (the fallback) reports a refused or failed start here
            status = stream.run(out.extend, err.extend)
        finally:
            stream.close()
    except ForbiddenError as e:
        raise ForbiddenError(e.message, hint=f"node mode execs into its debug pod {debug_pod} "
                             "to find the process of the container and to run tcpdump: ask "
                             "for RBAC verb create on pods/exec") from e
    except ExecFailed as e:
        raise MeshError(f"cannot run sh in debug pod {debug_pod}.{namespace} to find the "
                        f"process of {what}: {e.message}",
                        hint="pass --image with an image that ships sh, grep, nsenter and "
                             "tcpdump") from e
    if status is None or status.code != 0:
        said = bytes(err).decode(errors="replace").strip() or (status.message if status else
                                                               "the connection ended")
        raise MeshError(f"looking up the process of {what} in debug pod {debug_pod}."
                        f"{namespace} failed: {said}")
    pids = parse_pids(bytes(out).decode(errors="replace"))
    if not pids:
        raise NotFoundError(f"no process on the node is in a cgroup of container ID "
                            f"{container_id} ({what}); the container may have just restarted, "
                            "or its runtime uses a cgroup layout we do not recognise",
                            hint="retry, or use --mode ephemeral")
    return pids[0]
