"""`-o FILE`: where a capture file is written, without harming what was there.

The packets go to a private (0600) temporary file beside FILE, renamed over FILE only when the
capture produced something (tcpdump's stream began); a capture that did not happen - nothing
came, or it failed before its first packet (`discard`) - removes the temporary file and
leaves FILE as it was. A rename replaces a symlink at FILE itself, so
a link planted there (to someone's file) is never written through. Only a FILE that is not a
regular file - /dev/null, a FIFO, /dev/stdout's link to a pipe - is written directly: there
is nothing there to keep, and renaming over it would be wrong.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import BinaryIO

from kubectl_mesh.errors import NotFoundError, UsageError


class CaptureFile:
    """A file being captured into; `close()` decides: kept (renamed into place) or dropped."""

    def __init__(self, path: str):
        self.path = path
        self.temporary: str | None = None
        if _writes_in_place(path):
            self.file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
            return
        directory = os.path.dirname(path) or "."
        try:
            fd, self.temporary = tempfile.mkstemp(dir=directory,
                                                  prefix=f".{os.path.basename(path)}.",
                                                  suffix=".part")
        except FileNotFoundError:
            raise NotFoundError(f"cannot write {path}: directory {directory} does not exist")\
                from None
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror}") from None
        self.file = os.fdopen(fd, "wb")

    @property
    def started(self) -> bool:
        """Whether anything was written (a capture's header comes first)."""
        return self.file.tell() > 0 if self.temporary else True

    def close(self) -> bool:
        """Put the capture in place if it started, else drop it; True when FILE was written."""
        keep = self.started
        with contextlib.suppress(OSError, ValueError):
            self.file.close()
        if self.temporary is None:
            return keep
        temporary, self.temporary = self.temporary, None
        if keep:
            os.replace(temporary, self.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        return keep

    def discard(self) -> None:
        """Drop the capture whatever was written (it failed before any packet)."""
        with contextlib.suppress(OSError, ValueError):
            self.file.close()
        temporary, self.temporary = self.temporary, None
        if temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    def __enter__(self) -> "CaptureFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _writes_in_place(path: str) -> bool:
    """FILE is not a regular file (a device, a FIFO, or a link to one); a directory is an
    error (`-o DIR/` writes a file per pod)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(path)
        except FileNotFoundError:  # a dangling link: replaced, not followed
            return False
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"-o {path} is a directory", hint=f"write -o {path.rstrip('/')}/ for a "
                         "file per pod, or name a file")
    return not stat.S_ISREG(st.st_mode)
