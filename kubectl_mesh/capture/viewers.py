"""Wireshark and tshark: finding them and starting them on a pcap stream from our stdin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from kubectl_mesh.errors import ToolMissingError

# The usual install locations when wireshark is not on PATH.
WIRESHARK_LOCATIONS = {
    "darwin": ["/Applications/Wireshark.app/Contents/MacOS/Wireshark"],
    "win32": [r"C:\Program Files\Wireshark\Wireshark.exe",
              r"C:\Program Files (x86)\Wireshark\Wireshark.exe"],
}


def find_wireshark(environ=os.environ, platform: str = sys.platform) -> str | None:
    """`wireshark` on PATH, else the platform's usual install location."""
    found = shutil.which("wireshark", path=environ.get("PATH"))
    if found:
        return found
    for path in WIRESHARK_LOCATIONS.get(platform, []):
        if os.path.isfile(path):
            return path
    return None


def wireshark_argv(binary: str, title: str) -> list[str]:
    """Live capture from stdin (`-k -i -`), the window titled after the pods."""
    return [binary, "-k", "-i", "-", "-o", f"gui.window_title:{title}"]


def start_wireshark(title: str) -> subprocess.Popen:
    binary = find_wireshark()
    if binary is None:
        raise ToolMissingError("Wireshark was not found on PATH or in its usual install "
                               "location", hint="install Wireshark, or write a file with "
                                                "-o capture.pcap (or stream with -o - | tshark -r -)")
    return subprocess.Popen(wireshark_argv(binary, title), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_tshark_summary(stdout) -> subprocess.Popen:
    """`tshark -l -n -r -`: one line per packet on our stdout."""
    binary = shutil.which("tshark")
    if binary is None:
        raise ToolMissingError("--summary needs tshark, which is not on PATH",
                               hint="install tshark (Wireshark's CLI), or drop --summary")
    try:
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    return subprocess.Popen([binary, "-l", "-n", "-r", "-"], stdin=subprocess.PIPE,
                            stdout=fd if fd is not None else None, stderr=subprocess.DEVNULL)
