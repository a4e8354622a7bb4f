"""Targets as istioctl users type them, and their resolution into proxy pods.

Forms: `NAME`, `pod/NAME`, `NAME.NAMESPACE`, `deploy/NAME`, `sts/NAME`, `ds/NAME`, `rs/NAME`,
`svc/NAME` (each also `TYPE/NAME.NAMESPACE`), or a label selector (`-l app=x`).

Decisions (documented for users):
- `NAME.NAMESPACE` splits at the LAST dot, like istioctl; but names may contain dots, so an
  object whose whole name is `NAME.NAMESPACE` in the current namespace is preferred.
- A bare `NAME` is a pod. When no such pod exists, a Deployment, StatefulSet or DaemonSet of
  that name is accepted (users type the workload name far more often than a hashed pod
  name); if several kinds share the name, the user is asked to say which.
- Resolution yields the Running pods that have an `istio-proxy` container (gateways have only
  that one), sorted by name; `sniff`, which captures any pod as ksniff does, asks for every
  Running pod (`any_pod`). Terminating pods are dropped while others remain.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from kubectl_mesh.errors import ForbiddenError, MeshError, NotFoundError, UnreachableError, UsageError
from kubectl_mesh.kube.api import KubeApi
from kubectl_mesh.kube.labelselector import SelectorSyntaxError, check_selector
from kubectl_mesh.kube.names import dns1123_label_problem, dns1123_subdomain_problem
from kubectl_mesh.kube.pods import PROXY_CONTAINER, Pod, controller_uid

KIND_ALIASES = {
    "pod": ("po", "pod", "pods"),
    "deployment": ("deploy", "deployment", "deployments", "deployment.apps", "deployments.apps"),
    "statefulset": ("sts", "statefulset", "statefulsets", "statefulset.apps"),
    "daemonset": ("ds", "daemonset", "daemonsets", "daemonset.apps"),
    "replicaset": ("rs", "replicaset", "replicasets", "replicaset.apps"),
    "service": ("svc", "service", "services"),
}
_KIND_BY_ALIAS = {alias: kind for kind, aliases in KIND_ALIASES.items() for alias in aliases}
PLURALS = {"pod": "pods", "deployment": "deployments", "statefulset": "statefulsets",
           "daemonset": "daemonsets", "replicaset": "replicasets", "service": "services"}
WORKLOADS = ("deployment", "statefulset", "daemonset")  # what a bare NAME may also mean

SkipFn = Callable[[Pod, str], None]


@dataclass(frozen=True)
class Target:
    """A parsed target. `namespace` is set when the text ended in `.NAMESPACE`."""

    kind: str  # "pod", "deployment", ..., or "selector"
    name: str = ""
    namespace: str | None = None
    selector: str = ""
    typed: bool = False  # the user wrote `TYPE/`

    @classmethod
    def parse(cls, text: str) -> Target:
        """`deploy/catalog.istioinaction` -> Target("deployment", "catalog", "istioinaction")."""
        raw = text.strip()
        kind, typed = "pod", False
        if "/" in raw:
            prefix, raw = raw.split("/", 1)
            kind = _KIND_BY_ALIAS.get(prefix.lower())
            if kind is None:
                raise UsageError(f"unsupported target type {prefix!r} in {text!r}",
                                 hint="use pod/, deploy/, sts/, ds/, rs/ or svc/")
            typed = True
        if not raw or dns1123_subdomain_problem(raw):
            raise UsageError(f"invalid target {text!r}",
                             hint="expected [TYPE/]NAME[.NAMESPACE], lower-case, "
                                  "e.g. deploy/catalog.istioinaction")
        name, _, namespace = raw.rpartition(".") if "." in raw else (raw, "", None)
        if namespace is not None and dns1123_label_problem(namespace):
            namespace = None  # cannot be a namespace: the dots belong to the name
            name = raw
        return cls(kind=kind, name=name, namespace=namespace, typed=typed)

    @classmethod
    def from_selector(cls, selector: str) -> Target:
        if not selector.strip():
            raise UsageError("the label selector (-l) is empty")
        try:
            check_selector(selector)
        except SelectorSyntaxError as e:
            raise UsageError(f"invalid label selector -l {selector!r}: {e}",
                             hint="e.g. -l app=catalog or -l 'version in (v1,v2)'") from None
        return cls(kind="selector", selector=selector.strip())

    @property
    def dotted_name(self) -> str:
        """The whole text after `TYPE/`, which may itself be an object name with dots."""
        return f"{self.name}.{self.namespace}" if self.namespace is not None else self.name

    def __str__(self) -> str:
        if self.kind == "selector":
            return f"-l {self.selector}"
        return f"{self.kind}/{self.dotted_name}" if self.typed else self.dotted_name


def parse_target(text: str | None, selector: str | None = None) -> Target:
    """The target from a positional argument or `-l/--selector` (exactly one of them)."""
    if text and selector:
        raise UsageError("give either a target or -l/--selector, not both")
    if selector:
        return Target.from_selector(selector)
    if not text:
        raise UsageError("a target is required", hint="e.g. deploy/catalog, a pod name, or -l app=x")
    return Target.parse(text)


# ---- resolution ------------------------------------------------------------------------------

def likely_pod(target: Target, namespace: str) -> tuple[str, str] | None:
    """(name, namespace) of the pod a pod-form target (`NAME`, `pod/NAME`, `NAME.NAMESPACE`)
    usually names, known before the API is asked: the last of `find_object`'s candidates (a
    pod whose whole name is `NAME.NAMESPACE` is rare). None for workloads and selectors."""
    if target.kind != "pod":
        return None
    if target.namespace is not None:
        return target.name, target.namespace
    return target.name, namespace



def resolve(api: KubeApi, target: Target, namespace: str, *,
            on_skip: SkipFn | None = None, any_pod: bool = False) -> list[Pod]:
    """The Running pods with an istio-proxy that `target` means, sorted by name (with
    `any_pod`, every Running pod, sidecar or not).

    `namespace` is the default one (-n or the context's). `on_skip(pod, reason)` hears about
    pods left out of a multi-pod target (not running, no sidecar, terminating).
    """
    def keep(pods: list[Pod], what: str, single: bool) -> list[Pod]:
        return _proxies(pods, what, on_skip, single=single, explain=_explainer(api),
                        any_pod=any_pod)

    if target.kind == "selector":
        pods = api.list_pods(namespace, label_selector=target.selector)
        what = f'selector "{target.selector}" in namespace {namespace}'
        if not pods:
            raise NotFoundError(f"no pods in namespace {namespace} match the selector "
                                f'"{target.selector}"', hint=f"kubectl get pods -n {namespace} "
                                                            "--show-labels")
        return keep([Pod.from_json(p) for p in pods], what, single=False)
    pods, what = target_pods(api, target, namespace)
    return keep(pods, what, single=not what)


def target_pods(api: KubeApi, target: Target, namespace: str) -> tuple[list[Pod], str]:
    """Every pod a named `target` means, in any phase, with or without a proxy, and how to
    name the workload in messages ("" for a pod); NotFoundError when there is none."""
    kind, obj = find_object(api, target, namespace)
    meta = obj["metadata"]
    if kind == "pod":
        return [Pod.from_json(obj)], ""
    what = f"{kind} {meta['name']}.{meta['namespace']}"
    pods = _pods_of(api, kind, obj)
    if not pods:
        hint = "is it scaled to 0?" if kind != "service" else \
            f"selector {_selector_of(kind, obj)}; are its workloads scaled to 0?"
        raise NotFoundError(f"{what} has no pods", hint=hint)
    return pods, what


def list_proxies(api: KubeApi, namespace: str | None = None,
                 label_selector: str | None = None) -> list[Pod]:
    """All Running pods with an istio-proxy (namespace None = all), by namespace and name."""
    pods = [Pod.from_json(p) for p in api.list_pods(namespace, label_selector)]
    return sorted((p for p in pods if p.phase == "Running" and p.has_proxy),
                  key=lambda p: (p.namespace, p.name))


def find_object(api: KubeApi, target: Target, namespace: str) -> tuple[str, dict]:
    """(kind, object JSON) for a named target, or a NotFoundError that suggests the fix."""
    candidates = [(target.dotted_name, namespace)]  # an exact dotted name wins ...
    if target.namespace is not None:
        candidates.append((target.name, target.namespace))  # ... over NAME.NAMESPACE
    kinds = [target.kind] if target.typed else ["pod"]
    for kind in kinds:
        for name, ns in candidates:
            obj = api.get_resource(PLURALS[kind], ns, name, allow_missing=True)
            if obj is not None:
                return kind, obj
    if not target.typed:
        found = [(kind, obj) for name, ns in candidates for kind in WORKLOADS
                 if (obj := _get_if_allowed(api, kind, ns, name))]
        if len(found) == 1:
            return found[0]
        if found:
            forms = " or ".join(f"{k}/{o['metadata']['name']}" for k, o in found)
            raise UsageError(f'no pod "{target.dotted_name}", and several workloads have that '
                             f"name: say which ({forms})")
    raise _not_found(api, target, candidates[-1], kinds + ([] if target.typed else list(WORKLOADS)))


def _not_found(api: KubeApi, target: Target, where: tuple[str, str], kinds: list[str]) -> NotFoundError:
    name, ns = where
    kind_word = kinds[0] if target.typed else "pod or workload"
    if target.namespace is not None and not _namespace_exists(api, ns):
        return NotFoundError(f'{kind_word} "{target.dotted_name}" not found, and there is no '
                             f'namespace "{ns}"', hint="the text after the last dot is read as "
                                                       "the namespace; kubectl get namespaces")
    names: list[str] = []
    for kind in kinds:
        try:
            names += [o["metadata"]["name"] for o in api.list_resource(PLURALS[kind], ns)]
        except ForbiddenError:  # suggestions are a courtesy; not-found is the error
            pass
    elsewhere = _namespaces_holding(api, name, kinds, ns)
    if elsewhere:
        there = " and ".join(elsewhere[:3])
        return NotFoundError(f'{kind_word} "{name}" not found in namespace {ns}: it is in '
                             f'namespace {there}', hint=f"add -n {elsewhere[0]}")
    close = sorted({n for n in names if n.startswith(name) and n != name})[:3]
    close = close or difflib.get_close_matches(name, sorted(set(names)), n=3, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(f'"{n}"' for n in close) + "?"
    else:
        hint = f"kubectl get {PLURALS[kinds[0]]} -n {ns}"
    return NotFoundError(f'{kind_word} "{name}" not found in namespace {ns}', hint=hint)


def _namespaces_holding(api: KubeApi, name: str, kinds: list[str], not_in: str) -> list[str]:
    """The other namespaces that have an object of one of `kinds` called `name`: one list
    per kind across the namespaces the user may list (a refusal is no answer, not an error)."""
    found: set[str] = set()
    for kind in kinds:
        try:
            items = api.list_resource(PLURALS[kind], None, field_selector=f"metadata.name={name}")
        except ForbiddenError:
            continue
        found |= {o["metadata"]["namespace"] for o in items} - {not_in}
    return sorted(found)


def _get_if_allowed(api: KubeApi, kind: str, namespace: str, name: str) -> dict | None:
    """The object, or None when missing or when RBAC hides that kind (a guess, not an ask)."""
    try:
        return api.get_resource(PLURALS[kind], namespace, name, allow_missing=True)
    except ForbiddenError:
        return None


def _namespace_exists(api: KubeApi, namespace: str) -> bool:
    try:
        return api.get_resource("namespaces", None, namespace, allow_missing=True) is not None
    except ForbiddenError:  # may not read namespaces: assume it exists
        return True


def _pods_of(api: KubeApi, kind: str, obj: dict) -> list[Pod]:
    ns, uid = obj["metadata"]["namespace"], obj["metadata"].get("uid")
    selector = _selector_of(kind, obj)
    if not selector:
        raise NotFoundError(f"{kind} {obj['metadata']['name']}.{ns} has no selector",
                            hint="its endpoints are managed by hand; target the pods directly")
    pods = api.list_pods(ns, label_selector=selector)
    if kind == "service":
        owners = None  # a Service owns nothing: every selected pod counts
    elif kind == "deployment":
        # The Deployment's own ReplicaSets (selectors of other workloads may overlap).
        owners = {r["metadata"].get("uid") for r in api.list_resource("replicasets", ns,
                                                                      label_selector=selector)
                  if controller_uid(r) == uid}
    else:
        owners = {uid}
    return [Pod.from_json(p) for p in pods if owners is None or controller_uid(p) in owners]


def _selector_of(kind: str, obj: dict) -> str:
    spec = obj.get("spec") or {}
    if kind == "service":
        return label_selector_string({"matchLabels": spec.get("selector") or {}})
    return label_selector_string(spec.get("selector") or {})


def label_selector_string(selector: dict) -> str:
    """A LabelSelector object (matchLabels + matchExpressions) as a `labelSelector` query."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _explainer(api: KubeApi) -> Callable[[Pod], str]:
    """Why a pod has no istio-proxy (`kube.injection`), reading its namespace's labels when
    RBAC allows."""
    from kubectl_mesh.kube.injection import why_no_sidecar

    def explain(pod: Pod) -> str:
        try:
            ns = api.get_resource("namespaces", None, pod.namespace)
            ns_labels = (ns.get("metadata") or {}).get("labels") or {}
        except MeshError:
            ns_labels = None
        return why_no_sidecar(pod.name, pod.namespace, pod.labels, pod.annotations, ns_labels)

    return explain


def _proxies(pods: list[Pod], what: str, on_skip: SkipFn | None, *, single: bool,
             explain: Callable[[Pod], str] | None = None, any_pod: bool = False) -> list[Pod]:
    """Keep the Running pods with an istio-proxy (`any_pod`: every Running pod); explain
    why when none is left."""
    pods = sorted(pods, key=lambda p: p.name)
    skip = on_skip or (lambda pod, reason: None)
    running = [p for p in pods if p.phase == "Running"]
    if not running:
        if single:
            p = pods[0]
            raise UnreachableError(f"pod {p.ref} is {p.phase}, not Running",
                                   hint=f"kubectl describe pod {p.name} -n {p.namespace}")
        phases = ", ".join(f"{p.name}: {p.phase}" for p in pods[:5])
        raise UnreachableError(f"{what} has no Running pods ({phases})",
                               hint="kubectl describe pods to see why")
    for p in pods:
        if p.phase != "Running":
            skip(p, f"{p.phase}, not Running")
    live = [p for p in running if not p.terminating] or running
    for p in running:
        if p not in live:
            skip(p, "terminating")
    if any_pod:
        return live
    meshed = [p for p in live if p.has_proxy]
    if not meshed:
        first = live[0]
        lead = f"{first.ref} has no {PROXY_CONTAINER} container" if single or len(live) == 1 \
            else f"none of the {len(live)} Running pods of {what} has an {PROXY_CONTAINER} " \
                 f"container (e.g. {first.ref})"
        hint = explain(first) if explain else (
            f"is sidecar injection enabled? kubectl label namespace {first.namespace} "
            "istio-injection=enabled")
        raise NotFoundError(lead, hint=hint)
    for p in live:
        if not p.has_proxy:
            skip(p, f"no {PROXY_CONTAINER} container")
    return meshed
