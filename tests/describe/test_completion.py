"""Shell completion of `kubectl mesh describe pod|service TARGET`: the kind word, then pods
and workloads (`deploy/...`) for pod, services for service."""

from __future__ import annotations

import pytest

from kubectl_mesh.cli import completion, find_command

DESCRIBE = find_command("describe")
NAMES = {"api/v1/pods": ["catalog-1", "web-1"], "api/v1/services": ["catalog", "web"],
         "apis/apps/v1/deployments": ["catalog"]}


def lister_factory(kubeconfig, context, env):
    return (lambda collection, namespace: NAMES.get(collection, [])), "default"


@pytest.mark.parametrize("args,expected", [
    ([""], ["pod", "service"]),
    (["s"], ["service"]),
    (["pod", ""], ["catalog-1", "web-1"]),
    (["pod", "deploy/c"], ["deploy/catalog"]),
    (["svc", "w"], ["web"]),
    (["service", ""], ["catalog", "web"]),
    (["pod", "web-1", ""], []),  # one target only
    (["pod", "--no-p"], ["--no-proxy-check"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_describe_completion(args, expected):
    assert completion.complete_command(DESCRIBE, args, lister_factory=lister_factory) == \
        (expected, 4)
