"""What exec'd and ephemeral processes in the sandbox find on their PATH: shims for tools.

Sandbox pods are host processes, so a `tcpdump` exec'd into a "container" would be the host's
tcpdump, able to capture anything. The shims in `bin/` come first on the PATH of every exec'd
process, ephemeral container and command-running container, and behave like the container's
image and securityContext would (facts passed in `SANDBOX_CONTAINER_FACTS`, JSON):

Which images ship which tool (the documented rule):
- the pod annotation `sandbox.kubectl-mesh.io/tools`, a comma-separated list of `TOOL` (every
  container of the pod except istio-proxy) or `CONTAINER=TOOL` entries, e.g.
  `catalog=tcpdump`; or
- the image name: debug images (`netshoot`, `tcpdump`, `kubectl-mesh-debug`) ship tcpdump and
  nsenter; Istio's non-distroless `proxyv2` ships tcpdump (but runs as 1337 without caps).
A tool the image does not ship fails to exec with the runtime's
`exec: "tcpdump": executable file not found in $PATH` (checked by `check_command`).

Who may capture: a privileged container, or one running as root whose effective capabilities
(the runtime default set, which includes NET_RAW, minus `drop`, plus `add`) hold NET_RAW.
The shims themselves live in `tcpdump.py` and `nsenter.py`.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys

BIN = pathlib.Path(__file__).resolve().parent / "bin"
FACTS_ENV = "SANDBOX_CONTAINER_FACTS"
TOOLS_ANNOTATION = "sandbox.kubectl-mesh.io/tools"
SHIMMED = ("tcpdump", "nsenter")  # host tools an image may or may not ship
DEBUG_IMAGE = re.compile(r"(^|/)(netshoot|tcpdump|kubectl-mesh-debug)[^/]*(:|@|$)")
PROXY_IMAGE = re.compile(r"(^|/)proxyv2(:|@|$)")
# containerd's default capability set (what a container has unless it drops them).
DEFAULT_CAPS = frozenset({"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW",
                          "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE",
                          "SYS_CHROOT", "KILL", "AUDIT_WRITE"})


def image_tools(image: str, container: str, annotations: dict) -> list[str]:
    """The shimmed tools the container's image ships, by the rule above."""
    tools: set[str] = set()
    for entry in (annotations.get(TOOLS_ANNOTATION) or "").split(","):
        entry = entry.strip()
        if "=" in entry:
            name, _, tool = entry.partition("=")
            if name.strip() == container:
                tools.add(tool.strip())
        elif entry and container != "istio-proxy":
            tools.add(entry)
    if DEBUG_IMAGE.search(image or ""):
        tools.update(("tcpdump", "nsenter"))
    elif PROXY_IMAGE.search(image or "") and "distroless" not in image:
        tools.add("tcpdump")
    return sorted(tools)


def container_facts(pod: dict, spec: dict, *, ephemeral: bool) -> dict:
    """What the shims need to know about one container of `pod` (its JSON)."""
    pod_spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    sc = spec.get("securityContext") or {}
    pod_sc = pod_spec.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    dropped = {c.upper().removeprefix("CAP_") for c in caps.get("drop") or []}
    added = {c.upper().removeprefix("CAP_") for c in caps.get("add") or []}
    effective = set() if "ALL" in dropped else set(DEFAULT_CAPS - dropped)
    effective |= added
    uid = sc.get("runAsUser", pod_sc.get("runAsUser", 0))
    return {"pod": f"{meta.get('namespace')}/{meta.get('name')}", "container": spec.get("name"),
            "image": spec.get("image", ""), "ephemeral": ephemeral,
            "tools": image_tools(spec.get("image", ""), spec.get("name", ""),
                                 meta.get("annotations") or {}),
            "capabilities": sorted(effective), "runAsUser": int(uid or 0),
            "privileged": bool(sc.get("privileged")),
            "hostNetwork": bool(pod_spec.get("hostNetwork")),
            "hostPID": bool(pod_spec.get("hostPID"))}


def container_env(env: dict, pod: dict, spec: dict, *, ephemeral: bool = False) -> dict:
    """`env` plus the shim PATH and the container's facts (a new dict)."""
    out = dict(env)
    out["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    out["SANDBOX_PYTHON"] = sys.executable
    out[FACTS_ENV] = json.dumps(container_facts(pod, spec, ephemeral=ephemeral))
    return out


def check_command(command: list[str], env: dict) -> None:
    """FileNotFoundError when `command` names a shimmed tool the container's image lacks."""
    if not command or FACTS_ENV not in env:
        return
    tool = os.path.basename(command[0])
    if tool in SHIMMED and tool not in json.loads(env[FACTS_ENV]).get("tools", []):
        raise FileNotFoundError(2, "executable file not found in $PATH", command[0])


def facts_from_env(environ=os.environ) -> dict:
    """The facts of the container this process runs in (shim side)."""
    try:
        return json.loads(environ.get(FACTS_ENV) or "{}")
    except ValueError:
        return {}


def may_capture(facts: dict) -> bool:
    """Whether packet capture sockets are allowed: privileged, or root with NET_RAW."""
    if facts.get("privileged"):
        return True
    return int(facts.get("runAsUser", 0)) == 0 and "NET_RAW" in facts.get("capabilities", [])
