"""Pod Security admission (enforce mode) for the API double, like the real built-in plugin.

A namespace labelled `pod-security.kubernetes.io/enforce: baseline|restricted` rejects pod
creates, and pod updates that matter (a new ephemeral container, a changed image - the real
plugin's `isSignificantPodUpdate`), that violate the level, with the real API server's 403:

    pods "x" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities
    (container "debugger" must not include "NET_ADMIN", "NET_RAW" in
    securityContext.capabilities.add), privileged (container "sniff" must not set
    securityContext.privileged=true)

Checks and wording follow k8s.io/pod-security-admission/policy (check_*.go), in its order
(file-name order; restricted: the baseline checks it does not override, then its own). Baseline: host namespaces, privileged, capabilities
beyond the default set (which does NOT include NET_RAW: "the moby default set, minus
NET_RAW"), hostPath volumes, host ports. Restricted adds: allowPrivilegeEscalation=false,
capabilities drop ALL (add only NET_BIND_SERVICE), runAsNonRoot, no runAsUser 0, seccomp
RuntimeDefault/Localhost, volume types. Not modelled: AppArmor, SELinux, procMount, sysctls,
Windows host process, `-version` pins other than latest, exemptions, `warn`/`audit` modes.
"""

from __future__ import annotations

from .server import ApiError

ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
LEVELS = ("privileged", "baseline", "restricted")
BASELINE_CAPS = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
                           "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP",
                           "SETUID", "SYS_CHROOT"})
RESTRICTED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                "persistentVolumeClaim", "projected", "secret"})
SECCOMP_OK = ("RuntimeDefault", "Localhost")


class PodSecurity:
    """An admission callable `(kind, obj, old)` for `Api.admission` (after the mutating ones:
    like the real plugin, it judges the pod as it will be stored)."""

    def __init__(self, store):
        self.store = store

    def __call__(self, kind, obj: dict, old: dict | None) -> None:
        if kind.key != "pods":
            return
        meta = obj.get("metadata") or {}
        ns = self.store.find("namespaces", "", meta.get("namespace", ""))
        level = ((ns or {}).get("metadata", {}).get("labels") or {}).get(ENFORCE, "privileged")
        if level == "privileged":
            return
        if level not in LEVELS:
            level = "restricted"  # an invalid label fails closed, like the real plugin
        if old is not None and not significant_update(obj, old):
            return  # status, labels, ... : the real plugin lets these through
        reasons = violations(obj.get("spec") or {}, level)
        if reasons:
            version = ((ns or {}).get("metadata", {}).get("labels") or {}).get(
                ENFORCE_VERSION, "latest")
            name = meta.get("name", "")
            raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: violates PodSecurity '
                           f'"{level}:{version}": {", ".join(reasons)}',
                           {"name": name, "kind": "pods"})


def significant_update(pod: dict, old: dict) -> bool:
    """Whether an update changes what Pod Security judges (the real `isSignificantPodUpdate`:
    container count or images, or any new or changed ephemeral container image)."""
    spec, old_spec = pod.get("spec") or {}, old.get("spec") or {}
    for key in ("containers", "initContainers"):
        new_c, old_c = spec.get(key) or [], old_spec.get(key) or []
        if len(new_c) != len(old_c) or any(a.get("image") != b.get("image")
                                           for a, b in zip(new_c, old_c)):
            return True
    before = {c.get("name"): c.get("image") for c in old_spec.get("ephemeralContainers") or []}
    return any(c.get("name") not in before or before[c.get("name")] != c.get("image")
               for c in spec.get("ephemeralContainers") or [])


def violations(spec: dict, level: str) -> list[str]:
    """`reason (detail)` for every failed check of `level`, in the real plugin's order."""
    containers = [c for key in ("initContainers", "containers", "ephemeralContainers")
                  for c in spec.get(key) or []]
    baseline = [_capabilities_baseline, _host_namespaces, _host_path, _host_ports, _privileged]
    checks = baseline
    if level == "restricted":  # the baseline checks it does not override, then its own
        checks = [c for c in baseline if c not in (_capabilities_baseline, _host_path)] + [
            _privilege_escalation, _capabilities_restricted, _volume_types, _run_as_non_root,
            _run_as_user, _seccomp]
    out = []
    for check in checks:
        found = check(spec, containers)
        if found:
            out.append(found)
    return out


def _quote(names) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _containers(names: list[str]) -> str:
    return f"{'container' if len(names) == 1 else 'containers'} {_quote(names)}"


def _sc(c: dict) -> dict:
    return c.get("securityContext") or {}


def _caps(c: dict, key: str) -> list[str]:
    return [str(x) for x in (_sc(c).get("capabilities") or {}).get(key) or []]


def _capabilities_baseline(spec, containers) -> str | None:
    bad = [c["name"] for c in containers if set(_caps(c, "add")) - BASELINE_CAPS]
    caps = sorted({x for c in containers for x in _caps(c, "add") if x not in BASELINE_CAPS})
    if bad:
        return (f"non-default capabilities ({_containers(bad)} must not include {_quote(caps)} "
                f"in securityContext.capabilities.add)")
    return None


def _capabilities_restricted(spec, containers) -> str | None:
    no_drop = [c["name"] for c in containers if "ALL" not in _caps(c, "drop")]
    adding = [c["name"] for c in containers
              if any(x != "NET_BIND_SERVICE" for x in _caps(c, "add"))]
    caps = sorted({x for c in containers for x in _caps(c, "add") if x != "NET_BIND_SERVICE"})
    details = []
    if no_drop:
        details.append(f'{_containers(no_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_containers(adding)} must not include {_quote(caps)} in "
                       "securityContext.capabilities.add")
    return f"unrestricted capabilities ({'; '.join(details)})" if details else None


def _host_namespaces(spec, containers) -> str | None:
    """staging/src/k8s.io/pod-security-admission/policy/check_hostNamespaces.go
    `hostNamespaces_1_0`: `hostNetwork=true, hostPID=true, hostIPC=true`, in that order."""
    used = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    return f"host namespaces ({', '.join(used)})" if used else None


def _host_path(spec, containers) -> str | None:
    names = [v.get("name") for v in spec.get("volumes") or [] if "hostPath" in v]
    return f"hostPath volumes ({_quote(names)})" if names else None


def _host_ports(spec, containers) -> str | None:
    bad = [c["name"] for c in containers
           if any(p.get("hostPort") for p in c.get("ports") or [])]
    ports = sorted({str(p["hostPort"]) for c in containers for p in c.get("ports") or []
                    if p.get("hostPort")})
    if bad:
        return f"hostPort ({_containers(bad)} uses {'hostPort' if len(ports) == 1 else 'hostPorts'} {', '.join(ports)})"
    return None


def _privileged(spec, containers) -> str | None:
    bad = [c["name"] for c in containers if _sc(c).get("privileged")]
    return (f"privileged ({_containers(bad)} must not set securityContext.privileged=true)"
            if bad else None)


def _privilege_escalation(spec, containers) -> str | None:
    bad = [c["name"] for c in containers if _sc(c).get("allowPrivilegeEscalation") is not False]
    return (f"allowPrivilegeEscalation != false ({_containers(bad)} must set "
            "securityContext.allowPrivilegeEscalation=false)" if bad else None)


def _volume_types(spec, containers) -> str | None:
    bad = []
    for v in spec.get("volumes") or []:
        kinds = [k for k in v if k != "name"]
        if kinds and kinds[0] not in RESTRICTED_VOLUMES:
            bad.append(v.get("name"))
    return f"restricted volume types (volumes {_quote(bad)})" if bad else None


def _run_as_non_root(spec, containers) -> str | None:
    pod = (spec.get("securityContext") or {}).get("runAsNonRoot")
    setters = ["pod"] if pod is False else []
    explicit = [c["name"] for c in containers if _sc(c).get("runAsNonRoot") is False]
    if explicit:
        setters.append(_containers(explicit))
    if setters:
        return (f"runAsNonRoot != true ({' and '.join(setters)} must not set "
                "securityContext.runAsNonRoot=false)")
    implicit = [c["name"] for c in containers if _sc(c).get("runAsNonRoot") is None and not pod]
    if implicit:
        return (f"runAsNonRoot != true (pod or {_containers(implicit)} must set "
                "securityContext.runAsNonRoot=true)")
    return None


def _run_as_user(spec, containers) -> str | None:
    setters = ["pod"] if (spec.get("securityContext") or {}).get("runAsUser") == 0 else []
    bad = [c["name"] for c in containers if _sc(c).get("runAsUser") == 0]
    if bad:
        setters.append(_containers(bad))
    return f"runAsUser=0 ({' and '.join(setters)} must not set runAsUser=0)" if setters else None


def _seccomp(spec, containers) -> str | None:
    pod_type = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    if pod_type and pod_type not in SECCOMP_OK:
        return (f'seccompProfile (pod must not set securityContext.seccompProfile.type to '
                f'"{pod_type}")')
    unset = [c["name"] for c in containers
             if (_sc(c).get("seccompProfile") or {}).get("type") is None and not pod_type]
    bad = [c["name"] for c in containers
           if (_sc(c).get("seccompProfile") or {}).get("type") not in (None, *SECCOMP_OK)]
    if bad:
        return (f"seccompProfile ({_containers(bad)} must not set "
                "securityContext.seccompProfile.type to a value other than RuntimeDefault or "
                "Localhost)")
    if unset:
        return (f"seccompProfile (pod or {_containers(unset)} must set "
                'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')
    return None
