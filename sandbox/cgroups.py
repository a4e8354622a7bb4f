"""Container cgroups laid out like containerd's with the systemd cgroup driver, so that a
container process's `/proc/PID/cgroup` names its container ID as on a real node:

    <root>/kubepods.slice/kubepods-besteffort.slice/
        kubepods-besteffort-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope

`<root>` is `kubectl-mesh-sandbox-<N>` (N: the sandbox's leased 127.N network, so concurrent
sandboxes never share it) under the supervisor's own cgroup in the first writable hierarchy:
cgroup v2 (`/sys/fs/cgroup` on a pure v2 host, `/sys/fs/cgroup/unified` on a hybrid one),
else v1 `pids`. Nesting under our own cgroup keeps whatever accounts for the supervisor
accounting for its pods too. No controller is enabled: the cgroups only label processes.
The root's path is written to `<state>/cgroup-root`, so `sandbox down` removes the tree even
after the supervisor was killed.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import threading
import time
from typing import Callable, Iterator

MOUNT = pathlib.Path("/sys/fs/cgroup")
ROOT_FILE = "cgroup-root"


def hierarchies(mount: pathlib.Path = MOUNT) -> list[tuple[pathlib.Path, str]]:
    """(mount point, controller key in /proc/self/cgroup) candidates, preferred first."""
    found = []
    if (mount / "cgroup.controllers").exists():  # pure v2
        found.append((mount, ""))
    elif (mount / "unified" / "cgroup.controllers").exists():  # hybrid: v2 next to v1
        found.append((mount / "unified", ""))
    if (mount / "pids" / "cgroup.procs").exists():
        found.append((mount / "pids", "pids"))
    return found


def own_cgroup(controller: str, proc_self: str = "/proc/self/cgroup") -> str | None:
    """Our cgroup path in the hierarchy of `controller` ("" = the v2 hierarchy)."""
    try:
        lines = pathlib.Path(proc_self).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (controller in controllers.split(",")) if controller else controllers == "":
            return path
    return None


def scope_relpath(qos_class: str, pod_uid: str, container_id: str) -> pathlib.PurePath:
    """The systemd driver's slice/scope path of one container, relative to the root."""
    pod = pod_uid.replace("-", "_")
    qos = qos_class.lower()
    if qos == "guaranteed":  # Guaranteed pods sit directly under kubepods.slice
        return pathlib.PurePath("kubepods.slice", f"kubepods-pod{pod}.slice",
                                f"cri-containerd-{container_id}.scope")
    return pathlib.PurePath("kubepods.slice", f"kubepods-{qos}.slice",
                            f"kubepods-{qos}-pod{pod}.slice", f"cri-containerd-{container_id}.scope")


class CgroupTree:
    """One sandbox's cgroup root: create a container's scope, join it, remove it."""

    def __init__(self, root: pathlib.Path, record: pathlib.Path):
        self.root, self.record = root, record
        self._lock = threading.Lock()  # creating a scope vs removing an emptied parent

    @classmethod
    def create(cls, network: int, state_dir: pathlib.Path,
               mount: pathlib.Path = MOUNT) -> tuple[CgroupTree | None, str]:
        """The tree in the first writable hierarchy, or (None, why not)."""
        tried = []
        for hierarchy, controller in hierarchies(mount):
            own = own_cgroup(controller)
            if own is None:
                tried.append(f"{hierarchy}: our cgroup is not listed in /proc/self/cgroup")
                continue
            root = hierarchy / own.lstrip("/") / f"kubectl-mesh-sandbox-{network}"
            try:
                remove_tree(root)  # left by a sandbox that leased network N and was killed
                root.mkdir()
                _probe_join(root / "probe.scope")
            except (OSError, subprocess.SubprocessError) as e:
                tried.append(f"{root}: {getattr(e, 'strerror', None) or e}")
                remove_tree(root)
                continue
            record = state_dir / ROOT_FILE
            record.write_text(str(root))
            return cls(root, record), ""
        return None, "; ".join(tried) or f"no cgroup hierarchy is mounted at {mount}"

    def add_scope(self, relpath: pathlib.PurePath) -> Scope:
        with self._lock:
            path = self.root / relpath
            path.mkdir(parents=True, exist_ok=True)
            return Scope(path)

    def remove_scope(self, scope: Scope) -> None:
        """Remove the scope once its processes are gone (killing stragglers), and every parent
        slice it leaves empty."""
        with self._lock:
            _empty_and_remove(scope.path)
            for parent in scope.path.parents:
                if parent == self.root or self.root not in parent.parents:
                    break
                try:
                    parent.rmdir()
                except OSError:
                    break  # other pods' slices are still in it

    def remove_all(self) -> bool:
        """Remove the whole tree (`sandbox down`); the record goes once nothing is left."""
        with self._lock:
            removed = remove_tree(self.root)
        if removed:
            self.record.unlink(missing_ok=True)
        return removed


class Scope:
    """A container's cgroup. `joining()` gives the preexec_fn that moves a child into it
    between fork and exec, so its command runs there from its first instruction (no race)."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    @contextlib.contextmanager
    def joining(self) -> Iterator[Callable[[], None]]:
        """`with scope.joining() as join: Popen(..., preexec_fn=join)`. The descriptor is
        this spawn's own, open only around it: a scope removed meanwhile (a container
        stopping under an exec) cannot leave a child writing into a reused descriptor, and
        FileNotFoundError says the scope is gone. In the child, join() is one write(2):
        nothing that could wait on a lock another thread held at fork."""
        fd = os.open(self.path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
        try:
            yield lambda: os.write(fd, b"0")  # "0": the writing process itself (v1 and v2)
        finally:
            os.close(fd)


def remove_tree(root: pathlib.Path) -> bool:
    """Remove `root` and every cgroup below it, killing any process still in one."""
    if not root.is_dir():
        return True
    removed = [_empty_and_remove(pathlib.Path(d)) for d, _, _ in os.walk(root, topdown=False)]
    return all(removed)


def remove_recorded(state_dir: pathlib.Path) -> None:
    """`sandbox down`: remove the tree the supervisor recorded, if it left it behind."""
    recorded = state_dir / ROOT_FILE
    if not recorded.exists():
        return
    root = pathlib.Path(recorded.read_text().strip())
    if not root.name.startswith("kubectl-mesh-sandbox-"):  # never remove anything else
        return
    if remove_tree(root):
        recorded.unlink(missing_ok=True)


def _probe_join(cgroup: pathlib.Path) -> None:
    """Start a process in `cgroup` the way containers will be (mkdir alone can succeed where
    joining is refused, e.g. cgroup v2 delegation rules)."""
    cgroup.mkdir()
    try:
        with Scope(cgroup).joining() as join:
            subprocess.run(["true"], preexec_fn=join, check=True, timeout=10)
    finally:
        _empty_and_remove(cgroup)


def _pids(cgroup: pathlib.Path) -> list[int]:
    try:
        return [int(x) for x in (cgroup / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _empty_and_remove(cgroup: pathlib.Path, timeout: float = 5.0) -> bool:
    """rmdir `cgroup` once no process is in it (SIGKILLing any); False if it stayed busy."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in _pids(cgroup):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            cgroup.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:  # EBUSY: a killed process has not left yet
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
