"""Hold notes on pods through the API: read (a GET of the pod), write and remove (a JSON
merge patch of one annotation key; RBAC `patch pods`).

A denied or failed write is told once and the run carries on without notes: the levels are
still restored at the end, only other runs cannot see this hold, and `--restore-abandoned`
cannot finish it if this run is killed.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
from typing import Callable

from kubectl_mesh.errors import ForbiddenError, MeshError
from kubectl_mesh.kube.api import resource_path
from kubectl_mesh.loglevel.holdnote import HoldNote, notes_of

Say = Callable[[str], None]
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def pid_alive(pid: int) -> bool:
    """A process with this id runs on this host (a zombie, killed but not yet reaped by its
    parent, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): the signal answered, so it runs
        return True


def boot_id() -> str:
    """This boot of this host (Linux), so a pid is never compared across reboots."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def this_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


class PodNotes:
    """The hold notes of pods, read and written through `api` (kube.api.KubeApi)."""

    def __init__(self, api, say: Say, *, host: str | None = None,
                 clock: Callable[[], float] = time.time):
        self.api = api
        self.say = say
        self.host = host or socket.gethostname()
        self.boot = boot_id()
        self.clock = clock
        self._lock = threading.Lock()
        self._told: set[str] = set()

    def _tell_once(self, kind: str, line: str) -> None:
        with self._lock:
            if kind in self._told:
                return
            self._told.add(kind)
        self.say(line)

    def read(self, pod) -> list[HoldNote]:
        """The pod's notes, oldest first ([] when the pod cannot be read: told once)."""
        try:
            obj = self.api.get_pod(pod.namespace, pod.name, allow_missing=True)
        except MeshError as e:
            self._tell_once("read", f"warning: cannot read the hold notes of {pod.ref}: {e}; "
                                    f"other loglevel --for runs are not taken into account")
            return []
        return notes_of(((obj or {}).get("metadata") or {}).get("annotations"))

    def live(self, note: HoldNote) -> bool:
        return note.live(self.clock(), self.host, self.boot, pid_alive)

    def write(self, pod, note: HoldNote) -> bool:
        """Put `note` on the pod; False (told once) when it cannot be."""
        return self._patch(pod, note.key, note.to_annotation())

    def remove(self, pod, key: str) -> bool:
        """Take the note `key` off the pod; a failure says how to remove it by hand."""
        try:
            self._send(pod, key, None)
        except MeshError as e:
            self.say(f"warning: could not remove the hold note from {pod.ref}: {e} "
                     f"(kubectl annotate pod {pod.name} -n {pod.namespace} {key}-)")
            return False
        return True

    def _patch(self, pod, key: str, value: str) -> bool:
        try:
            self._send(pod, key, value)
        except ForbiddenError as e:
            self._tell_once("write", f"warning: {e}: this hold is not noted on the pods, so "
                                     f"other loglevel runs cannot see it and, if this run is "
                                     f"killed, --restore-abandoned cannot put its levels back")
            return False
        except MeshError as e:
            self._tell_once("write", f"warning: cannot note this hold on {pod.ref}: {e}; "
                                     f"carrying on without the note")
            return False
        return True

    def _send(self, pod, key: str, value: str | None) -> None:
        self.api.request("PATCH", resource_path("pods", pod.namespace, pod.name),
                         json={"metadata": {"annotations": {key: value}}}, headers=MERGE_PATCH)

    def new_note(self, note_id: str, spec: str, seconds: float, set_: dict,
                 previous: dict) -> HoldNote:
        now = self.clock()
        return HoldNote(id=note_id, user=this_user(), host=self.host, pid=os.getpid(),
                        spec=spec, started=now, until=now + seconds, renewed=now, set=set_,
                        previous=previous, boot=self.boot)
