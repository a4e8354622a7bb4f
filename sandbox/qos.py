"""A pod's QoS class, as the real API server computes it at creation
(k8s.io/kubernetes pkg/apis/core/helper/qos/qos.go `ComputePodQOS`) from its containers'
cpu and memory requests and limits (init containers included): none anywhere → BestEffort,
every container with requests equal to non-zero limits for both → Guaranteed, else Burstable.
Requests left out default to the limits first (pkg/apis/core/v1/defaults.go
`SetDefaults_Pod`)."""

from __future__ import annotations

import fractions
import re

COMPUTE = ("cpu", "memory")
_SUFFIX = {"": 1, "m": fractions.Fraction(1, 1000), "k": 10**3, "M": 10**6, "G": 10**9,
           "T": 10**12, "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
           "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?)$")


def quantity(text) -> fractions.Fraction:
    """A resource quantity (`500m`, `1Gi`, `1e3`, `2`) as an exact number; ValueError if not one."""
    m = _QUANTITY.match(str(text).strip())
    if not m:
        raise ValueError(f"quantities must match the regular expression "
                         f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}")
    number, exponent, suffix = m.groups()
    value = fractions.Fraction(number)
    return value * (fractions.Fraction(10) ** int(exponent) if exponent else _SUFFIX[suffix or ""])


def default_requests(container: dict) -> None:
    """A limit without a request makes the request equal to it (SetDefaults_Pod)."""
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    if limits:
        requests = resources.setdefault("requests", {})
        for name, value in limits.items():
            requests.setdefault(name, value)


def _resource_qos(resources: dict, name: str) -> str:
    def amount(kind: str) -> fractions.Fraction:
        try:
            return quantity((resources.get(kind) or {}).get(name, 0))
        except ValueError:
            return fractions.Fraction(0)
    req, lim = amount("requests"), amount("limits")
    if req != lim:
        return "Burstable"
    return "BestEffort" if req == 0 else "Guaranteed"


def _requirements_qos(resources: dict) -> str:
    if not resources.get("requests") and not resources.get("limits"):
        return "BestEffort"
    classes = {_resource_qos(resources, name) for name in COMPUTE}
    return classes.pop() if len(classes) == 1 else "Burstable"


def pod_qos(spec: dict) -> str:
    pod = ""
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        qos = _requirements_qos(c.get("resources") or {})
        if qos == "Burstable":
            return qos
        if pod and pod != qos:
            return "Burstable"
        pod = qos
    return pod or "BestEffort"
