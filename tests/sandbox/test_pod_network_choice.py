"""Which pod network the real backend's sandbox makes when none is asked for: a network
namespace per pod (`netns`) where it can be made (root), else an address per pod in the
host's namespace (`loopback`); $SANDBOX_POD_NETWORK chooses either."""

from __future__ import annotations

import os

import pytest

from sandbox.real.kubelet import podnetwork


@pytest.mark.parametrize("env, euid, expected", [
    (None, 0, "netns"),
    (None, 1000, "loopback"),
    ("loopback", 0, "loopback"),
    ("netns", 1000, "netns"),  # asked for: it fails at start, saying why
    ("bogus", 0, "netns"),
], ids=["root", "not-root", "env-loopback", "env-netns", "env-unknown"])
def test_default_pod_network(monkeypatch, env, euid, expected):
    if env is None:
        monkeypatch.delenv(podnetwork.POD_NETWORK_ENV, raising=False)
    else:
        monkeypatch.setenv(podnetwork.POD_NETWORK_ENV, env)
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    assert podnetwork.default_pod_network() == expected
