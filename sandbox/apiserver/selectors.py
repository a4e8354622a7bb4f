"""Label and field selectors, as the API server parses them from query strings."""

from __future__ import annotations

import re
from typing import Callable

Predicate = Callable[[dict], bool]

_SET_RE = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(in|notin)\s*\(([^)]*)\)|(==|=|!=)\s*([\w./-]*))?\s*$")


class SelectorError(ValueError):
    pass


def _split_terms(selector: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur)
    return terms


def label_selector(selector: str | None) -> Predicate:
    """Parse `a=b,c!=d,e in (x,y),!f,g` into a predicate over an object's labels."""
    if not selector:
        return lambda obj: True
    checks: list[Callable[[dict], bool]] = []
    for term in _split_terms(selector):
        m = _SET_RE.match(term)
        if not m:
            raise SelectorError(f"unable to parse requirement: {term!r}")
        neg, key, setop, values, op, value = m.groups()
        if setop:
            allowed = {v.strip() for v in values.split(",") if v.strip()}
            if setop == "in":
                checks.append(lambda l, k=key, a=allowed: l.get(k) in a)
            else:
                checks.append(lambda l, k=key, a=allowed: l.get(k) not in a)
        elif op in ("=", "=="):
            checks.append(lambda l, k=key, v=value: l.get(k) == v)
        elif op == "!=":
            checks.append(lambda l, k=key, v=value: l.get(k) != v)
        elif neg:
            checks.append(lambda l, k=key: k not in l)
        else:
            checks.append(lambda l, k=key: k in l)
    return lambda obj: all(c((obj.get("metadata") or {}).get("labels") or {}) for c in checks)


def _field(obj: dict, path: str) -> str:
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    return "" if cur is None else str(cur)


# The field labels each kind can be selected by (k8s.io/kubernetes pkg/apis/core/v1/
# conversion.go `AddFieldLabelConversionFunc`, apps/v1 for ReplicaSets); any other kind only by
# its name and namespace (apimachinery DefaultMetaV1FieldSelectorConversion).
META_FIELDS = ("metadata.name", "metadata.namespace")
SELECTABLE_FIELDS = {
    "pods": META_FIELDS + ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                           "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                           "status.podIP", "status.podIPs", "status.nominatedNodeName"),
    "nodes": ("metadata.name", "spec.unschedulable"),
    "events": META_FIELDS + ("involvedObject.kind", "involvedObject.namespace",
                             "involvedObject.name", "involvedObject.uid",
                             "involvedObject.apiVersion", "involvedObject.resourceVersion",
                             "involvedObject.fieldPath", "reason", "reportingComponent",
                             "source", "type"),
    "namespaces": ("metadata.name", "status.phase"),
    "secrets": META_FIELDS + ("type",),
    "services": META_FIELDS + ("spec.clusterIP", "spec.type"),
    "replicasets.apps": META_FIELDS + ("status.replicas",),
    "replicationcontrollers": META_FIELDS + ("status.replicas",),
}
FIELD_ALIASES = {("pods", "spec.host"): "spec.nodeName"}  # old v1 clients' name


def field_selector(selector: str | None, kind_key: str | None = None) -> Predicate:
    """`metadata.name=x,status.podIP=1.2.3.4,status.phase!=Running` as a predicate; with
    `kind_key`, a field that kind cannot be selected by is refused as the real server
    refuses it (`field label not supported: <field>`, a 400)."""
    if not selector:
        return lambda obj: True
    checks = []
    for term in selector.split(","):
        m = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise SelectorError(f"invalid field selector: {term!r}")
        path, op, value = m.groups()
        if kind_key is not None:
            path = FIELD_ALIASES.get((kind_key, path), path)
            if kind_key not in SELECTABLE_FIELDS and path not in META_FIELDS:
                raise SelectorError(f'"{path}" is not a known field selector: only '
                                    f'"metadata.name", "metadata.namespace"')
            if path not in SELECTABLE_FIELDS.get(kind_key, META_FIELDS):
                raise SelectorError(f"field label not supported: {path}")
        if op == "!=":
            checks.append(lambda o, p=path, v=value: _field(o, p) != v)
        else:
            checks.append(lambda o, p=path, v=value: _field(o, p) == v)
    return lambda obj: all(c(obj) for c in checks)


def matches_labels(selector: dict | None, labels: dict | None) -> bool:
    """A `matchLabels`-style map (or a Service selector) against labels; empty selects nothing."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def matches_label_selector(selector: dict | None, labels: dict | None) -> bool:
    """A LabelSelector (`matchLabels` + `matchExpressions`) against labels."""
    if not selector:
        return False
    labels = labels or {}
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))
