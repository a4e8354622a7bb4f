"""A container's volumes at their mountPaths, in a mount namespace of the container's own.

`python mounts.py [--bind DIR=MOUNTPATH[:ro]]... [--workdir DIR] -- command...` (run as root by
the kubelet, after the child joined the pod's network namespace): unshare(CLONE_NEWNS), make
every mount a slave of the host's (so nothing done here reaches the host: iproute2
ip/ipnetns.c `netns_switch` does the same), bind each volume directory over its mountPath
(read-only when `:ro`, as runc remounts a readOnly volumeMount MS_RDONLY), chdir to the
image's working directory and exec the command (so the command is the container's process).

A mountPath whose directory does not exist on the node (/var/run/secrets/... , /etc/cacerts)
needs a mount point. Inside an image's root file system runc would create it; here the
nearest existing ancestor is shadowed instead, in this namespace only: the ancestor is bound
aside (recursively, keeping mounts below it, such as the pod's /etc/resolv.conf), a tmpfs is
mounted over it, and each of its entries is put back (a directory or file bound from the
aside copy, a symlink recreated) before the missing directories are made in the tmpfs. The
node's file system is never written to."""

from __future__ import annotations

import argparse
import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE, MS_SLAVE = 1, 32, 4096, 16384, 1 << 18, 1 << 19
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    _check(_libc.mount(source.encode(), target.encode(),
                       fstype.encode() if fstype else None, flags, None),
           f"mount {source} on {target}")


def bind(source: str, target: str, readonly: bool = False) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def existing_ancestor(path: str) -> str:
    """The deepest directory of `path` (itself included) that exists, symlinks resolved."""
    path = os.path.realpath(path)
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


def shadow(directory: str, aside: str) -> None:
    """A tmpfs over `directory` holding what it held: its entries bound back from `aside`."""
    os.makedirs(aside, exist_ok=True)
    bind(directory, aside)
    mount("tmpfs", directory, "tmpfs", 0)
    for entry in os.scandir(aside):
        target = os.path.join(directory, entry.name)
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            os.mkdir(target)
            bind(entry.path, target)
        else:
            open(target, "w").close()
            bind(entry.path, target)


def mount_volumes(binds: list[tuple[str, str, bool]], scratch: str) -> None:
    """Bind each (directory, mountPath, read-only), making mount points as needed (only
    ever in a tmpfs of this namespace)."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    mount("none", "/", None, MS_SLAVE | MS_REC)
    ours: set[str] = set()  # directories made in a shadowing tmpfs, and the shadowed ones
    for number, (source, target, readonly) in enumerate(sorted(binds, key=lambda b: b[1])):
        target = os.path.join(os.path.realpath(os.path.dirname(target)), os.path.basename(target))
        if not os.path.isdir(target):
            ancestor = existing_ancestor(target)
            if ancestor == "/":
                raise OSError(f"no mount point for {target}: / is not shadowed")
            if ancestor not in ours:
                shadow(ancestor, os.path.join(scratch, str(number)))
                ours.add(ancestor)
            missing = target
            while missing != ancestor:
                ours.add(missing)
                missing = os.path.dirname(missing)
            os.makedirs(target, exist_ok=True)
        bind(source, target, readonly)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", action="append", default=[], metavar="DIR=MOUNTPATH[:ro]")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--scratch", required=True,
                        help="where shadowed directories are bound aside")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    binds = []
    for spec in args.bind:
        source, _, target = spec.partition("=")
        readonly = target.endswith(":ro")
        binds.append((source, target.removesuffix(":ro"), readonly))
    mount_volumes(binds, args.scratch)
    if args.workdir:
        os.chdir(args.workdir)
    os.execvp(command[0], command)


if __name__ == "__main__":
    try:
        main()
    except OSError as e:
        print(f"sandbox: cannot set up the container's mounts: {e}", file=sys.stderr, flush=True)
        sys.exit(128)
