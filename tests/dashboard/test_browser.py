"""A real browser through the dashboard: headless Chromium loads the printed URL, finds the
Envoy admin page's endpoints and follows one; Ctrl-C then leaves no port and no child."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess

import pytest

from .conftest import children, port_open

pytestmark = pytest.mark.browser

CATALOG = ("deploy/catalog", "-n", "istioinaction")


def chromium_dom(url: str, profile) -> str:
    """`chromium --headless --dump-dom URL`: the page's DOM after its scripts ran. In its own
    process group, ended whatever it leaves (its zygote and helpers)."""
    binary = shutil.which("chromium")
    assert binary, "chromium is missing: scripts/system_tools.sh installs it (as root, apt)"
    argv = [binary, "--headless", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={profile}", "--dump-dom", url]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True, text=True)
    try:
        dom, _ = proc.communicate(timeout=90)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait()
    assert proc.returncode == 0, f"chromium exited {proc.returncode}"
    return dom


def test_chromium_finds_the_admin_pages_links_through_the_forward(dashboard, tmp_path):
    d = dashboard(*CATALOG, "--browser=false")
    assert d.url, "no URL printed"
    dom = chromium_dom(d.url, tmp_path / "profile")
    assert "<title>Envoy Admin</title>" in dom
    # Envoy's home page: a link for each endpoint without parameters, a form for the others.
    targets = set(re.findall(r'(?:href|action)="([a-z_/]+)"', dom))
    assert {"config_dump", "clusters", "listeners", "stats", "server_info", "certs",
            "memory"} <= targets, sorted(targets)
    clusters = chromium_dom(d.url + "clusters", tmp_path / "profile")
    assert re.search(r"outbound\|80\|\|catalog\.istioinaction\.svc\.cluster\.local::", clusters)
    kids = children(d.proc.pid)
    code, err = d.stop(signal.SIGINT)
    assert code == 130, err
    assert not port_open(d.port)
    assert kids == set()  # the WebSocket channel: no helper process at all
