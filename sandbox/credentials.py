"""Files that hold credentials (tokens, kubeconfigs, private keys): readable by the owner only
from the moment they exist, in directories only the owner may enter."""

from __future__ import annotations

import os
import pathlib
import tempfile


def private_dir(path: pathlib.Path) -> pathlib.Path:
    """`path` (created if missing, parents too) with mode 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: pathlib.Path, data: str | bytes) -> pathlib.Path:
    """Atomically (re)write `path` with mode 0600: the content goes to a temporary file that
    mkstemp creates 0600 next to it, which then replaces `path` (never world-readable, never
    half-written)."""
    if isinstance(data, str):
        data = data.encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path
