"""Faults the sandbox istiod injects for one proxy, for what only `sync --verify` can see.

Set with the pod annotation `sandbox.kubectl-mesh.io/xds-fault` (removing it heals):
- `lose-pushes`: pushes to the proxy are recorded as sent AND acknowledged but never reach
  it, like a response lost between istiod and Envoy while istiod believes it was ACKed:
  syncz says SYNCED, the Envoy still runs the old version (LAGGING).
- `half-open`: the ADS stream breaks on the proxy's side only, like a load balancer between
  them dropping an idle connection without telling istiod: the Envoy sees its stream closed
  (`control_plane.connected_state` 0) and cannot reconnect while the fault lasts, and istiod
  keeps listing the old connection (DISCONNECTED). Delete the pod meanwhile and istiod
  lists a proxy that no longer exists (GONE) for GHOST_TTL seconds, as a real istiod does
  until its keepalive gives up on the connection.
"""

from __future__ import annotations

from sandbox.istiod.mesh import Mesh

FAULT_ANNOTATION = "sandbox.kubectl-mesh.io/xds-fault"
LOSE_PUSHES, HALF_OPEN = "lose-pushes", "half-open"
GHOST_TTL = 30.0  # seconds a half-open connection of a deleted pod stays listed


def fault_of(mesh: Mesh, name: str, namespace: str) -> str:
    """The fault set on pod name.namespace, or ''."""
    pod = mesh.pod(name, namespace) or {}
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(FAULT_ANNOTATION, "")
    return value if value in (LOSE_PUSHES, HALF_OPEN) else ""
