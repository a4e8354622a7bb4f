"""A container's user as its securityContext sets it, for the processes a kubelet starts:
`run_as(pod, container)` is the command prefix (`setpriv`) that gives it. Used for the real
pilot-agent's containers (sandbox/real/istio) and for the sandbox's Envoy as istio-proxy in a
pod network namespace of its own (sandbox/runtime.py), where istio-iptables' owner match
needs Envoy to run as the injected 1337."""

from __future__ import annotations

import shutil


# What a container's securityContext asks for, as `setpriv` (util-linux) gives it before
# exec. The two capabilities stay (ambient) so that a process running as 1337 still reads the
# root-owned sandbox files a pod's volumes would have given it.
_KEPT_CAPABILITIES = "+dac_override,+dac_read_search"


def run_as(pod: dict, container: dict) -> list[str]:
    """The command prefix that runs as the container's runAsUser/runAsGroup (the
    container's securityContext over the pod's: pkg/securitycontext/util.go
    `DetermineEffectiveSecurityContext`); empty for root or when neither says. Without a
    runAsGroup the group is the image user's; the proxyv2 image names no USER
    (pilot/docker/Dockerfile.proxyv2), so it is root's, 0."""
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    context = container.get("securityContext") or {}
    user = context.get("runAsUser", pod_context.get("runAsUser"))
    group = context.get("runAsGroup", pod_context.get("runAsGroup"))
    if not user and not group:
        return []
    user, group = int(user or 0), int(group or 0)
    return [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={user}",
            f"--regid={group}", "--clear-groups", f"--inh-caps={_KEPT_CAPABILITIES}",
            f"--ambient-caps={_KEPT_CAPABILITIES}", "--"]
