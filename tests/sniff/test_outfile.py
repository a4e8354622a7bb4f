"""`-o FILE` (capture/outfile.py): a private temporary file beside FILE, renamed into place
only when the capture started; symlinks at FILE are replaced, never written through."""

from __future__ import annotations

import os
import stat

import pytest

from kubectl_mesh.capture.outfile import CaptureFile
from kubectl_mesh.errors import NotFoundError, UsageError


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_capture_that_did_not_start_leaves_the_old_file_as_it_was(tmp_path):
    old = tmp_path / "c.pcap"
    old.write_bytes(b"yesterday's capture")
    with CaptureFile(str(old)) as f:
        assert f.temporary and os.path.dirname(f.temporary) == str(tmp_path)
        assert old.read_bytes() == b"yesterday's capture"
    assert old.read_bytes() == b"yesterday's capture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pcap"]  # no temporary left


def test_a_started_capture_replaces_the_file_and_is_private(tmp_path):
    old = tmp_path / "c.pcap"
    old.write_bytes(b"old")
    old.chmod(0o644)
    with CaptureFile(str(old)) as f:
        assert _mode(f.temporary) == 0o600
        f.file.write(b"header")
    assert old.read_bytes() == b"header" and _mode(old) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pcap"]


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path, dangling):
    victim = tmp_path / "victim"
    if not dangling:
        victim.write_bytes(b"not yours")
    link = tmp_path / "c.pcap"
    link.symlink_to(victim)
    with CaptureFile(str(link)) as f:
        f.file.write(b"header")
    assert not link.is_symlink() and link.read_bytes() == b"header"
    assert victim.exists() != dangling and (dangling or victim.read_bytes() == b"not yours")


def test_devices_and_fifos_are_written_in_place(tmp_path):
    with CaptureFile(os.devnull) as f:
        f.file.write(b"header")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        link = tmp_path / "to-fifo"
        link.symlink_to(fifo)  # like /dev/stdout -> /proc/self/fd/1 -> a pipe
        with CaptureFile(str(link)) as f:
            f.file.write(b"header")
        assert os.read(reader, 100) == b"header" and link.is_symlink()
    finally:
        os.close(reader)


def test_a_directory_or_a_missing_directory_is_an_error(tmp_path):
    with pytest.raises(UsageError, match="is a directory"):
        CaptureFile(str(tmp_path))
    with pytest.raises(NotFoundError, match="does not exist"):
        CaptureFile(str(tmp_path / "nope" / "c.pcap"))
