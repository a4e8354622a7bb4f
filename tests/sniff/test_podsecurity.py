"""The sandbox's Pod Security admission: the real plugin's rules and wording (unit level)."""

from __future__ import annotations

import pytest

from sandbox.apiserver import kinds
from sandbox.apiserver.podsecurity import PodSecurity, significant_update, violations
from sandbox.apiserver.server import ApiError
from sandbox.apiserver.store import Store

PODS = kinds.by_key("pods")
PROXY_SC = {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": True,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}}


def debugger(*caps: str, **sc) -> dict:
    return {"name": "debugger", "image": "netshoot",
            "securityContext": {"capabilities": {"add": list(caps)}, **sc}}


@pytest.mark.parametrize("caps, level, allowed", [
    (["NET_RAW"], "baseline", False),  # not in baseline's set ("moby default minus NET_RAW")
    (["NET_ADMIN"], "baseline", False),
    (["CHOWN", "NET_BIND_SERVICE"], "baseline", True),
    (["NET_BIND_SERVICE"], "restricted", False),  # allowed, but restricted also needs drop ALL
], ids=["net-raw", "net-admin", "default-set", "restricted-needs-drop-all"])
def test_capabilities(caps, level, allowed):
    assert (violations({"containers": [debugger(*caps)]}, level) == []) is allowed


def test_baseline_message_lists_every_violation_in_the_real_order():
    spec = {"hostPID": True, "hostNetwork": True,
            "containers": [{"name": "app", "image": "a"},
                           {"name": "sniff", "image": "n", "securityContext": {"privileged": True}}],
            "ephemeralContainers": [debugger("NET_RAW", "NET_ADMIN")]}
    assert violations(spec, "baseline") == [
        'non-default capabilities (container "debugger" must not include "NET_ADMIN", '
        '"NET_RAW" in securityContext.capabilities.add)',
        "host namespaces (hostNetwork=true, hostPID=true)",
        'privileged (container "sniff" must not set securityContext.privileged=true)']


def test_istio_proxy_passes_restricted_only_with_seccomp():
    spec = {"containers": [{"name": "istio-proxy", "image": "proxyv2", "securityContext": PROXY_SC}]}
    assert violations(spec, "baseline") == []
    assert violations(spec, "restricted") == [
        'seccompProfile (pod or container "istio-proxy" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")']
    spec["securityContext"] = {"seccompProfile": {"type": "RuntimeDefault"}}
    assert violations(spec, "restricted") == []


def test_significant_updates_are_new_ephemeral_containers_and_images_not_status():
    old = {"spec": {"containers": [{"name": "a", "image": "x"}]}, "status": {"phase": "Pending"}}
    assert not significant_update({**old, "status": {"phase": "Running"}}, old)
    assert significant_update({"spec": {**old["spec"], "ephemeralContainers": [debugger()]}}, old)
    assert significant_update({"spec": {"containers": [{"name": "a", "image": "y"}]}}, old)


def _admission(label: str | None) -> PodSecurity:
    store = Store()
    labels = {"pod-security.kubernetes.io/enforce": label} if label else {}
    store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": "ns", "labels": labels}})
    return PodSecurity(store)


def test_forbidden_status_has_the_api_servers_shape():
    pod = {"metadata": {"name": "web", "namespace": "ns"},
           "spec": {"containers": [{"name": "app", "image": "a"}],
                    "ephemeralContainers": [debugger("NET_ADMIN", "NET_RAW")]}}
    with pytest.raises(ApiError) as e:
        _admission("baseline")(PODS, pod, None)
    assert e.value.code == 403
    body = e.value.body
    assert (body["kind"], body["status"], body["reason"], body["code"]) == \
        ("Status", "Failure", "Forbidden", 403)
    assert body["message"] == (
        'pods "web" is forbidden: violates PodSecurity "baseline:latest": non-default '
        'capabilities (container "debugger" must not include "NET_ADMIN", "NET_RAW" in '
        'securityContext.capabilities.add)')
    assert body["details"] == {"name": "web", "kind": "pods"}


@pytest.mark.parametrize("label", [None, "privileged"], ids=str)
def test_unlabelled_or_privileged_namespaces_admit_everything(label):
    pod = {"metadata": {"name": "web", "namespace": "ns"},
           "spec": {"hostPID": True, "containers": [debugger("SYS_ADMIN", privileged=True)]}}
    _admission(label)(PODS, pod, None)  # no ApiError


def test_host_namespaces_in_the_real_order_and_form():
    """pod-security-admission/policy/check_hostNamespaces.go: hostNetwork, hostPID, hostIPC,
    each `=true` (the real API server's message, seen on the real backend)."""
    spec = {"hostIPC": True, "hostNetwork": True, "containers": [{"name": "app", "image": "a"}]}
    assert violations(spec, "baseline") == ["host namespaces (hostNetwork=true, hostIPC=true)"]
