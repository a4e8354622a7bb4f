"""`kubectl mesh describe pod|service`: read the cluster's objects (analyze's reader), pick the
pod, ask its Envoy and the gateways' Envoys what they carry, attach analyze's findings, and
write the description."""

from __future__ import annotations

from typing import IO

from kubectl_mesh.describe.options import DescribeOptions
from kubectl_mesh.errors import ExitCode, ForbiddenError, NotFoundError


def run(options: DescribeOptions, stdout: IO[str], stderr: IO[str]) -> int:
    from kubectl_mesh.session import Session

    with Session.open(options.cluster, stderr=stderr) as session:
        namespace = options.cluster.namespace or session.namespace or "default"
        report = describe(session, options, namespace, stderr)
    _write(report, options.output, stdout)
    return ExitCode.OK


def describe(session, options: DescribeOptions, namespace: str, stderr: IO[str]) -> dict:
    from kubectl_mesh.describe import report as reports
    from kubectl_mesh.describe.objects import NOT_READ, MeshObjects

    if options.kind == "service":
        svc_namespace, name = _find_service(session, options.target, namespace)
    else:
        pod_namespace, pod_name = _pick_pod(session, options.target, namespace, stderr)

    store, missing, refused = _read(session, stderr)
    mesh = MeshObjects(store, missing=missing, refused=refused,
                       root_namespace=_root_namespace(session, options.istio_namespace))
    ctx = reports.Context(mesh, namespace,
                          findings=_findings(store, missing | refused | NOT_READ))
    if options.kind == "service":
        svc = store.get("Service", svc_namespace, name)
        if svc is None:  # deleted between the get and the list
            raise NotFoundError(f'service "{name}" not found in namespace {svc_namespace}')
        pods, services = reports.istio_pods(ctx, svc)[:1], [svc]
    else:
        pod = store.get("Pod", pod_namespace, pod_name)
        if pod is None:  # deleted between the get and the list
            raise NotFoundError(f'pod "{pod_name}" not found in namespace {pod_namespace}',
                                hint="it was deleted; try again")
        pods, services = [pod], mesh.services_selecting(pod)
    if options.check_proxies:
        ctx.proxies = _read_proxies(session, reports.proxies_to_read(ctx, pods, services), stderr)
    if options.kind == "service":
        return reports.describe_service_report(ctx, svc)
    return reports.describe_pod_report(ctx, pod, options.ignore_unmeshed)


def _find_service(session, text: str, namespace: str) -> tuple[str, str]:
    """(namespace, name) of `NAME`, `NAME.NAMESPACE` or `svc/NAME[.NAMESPACE]`
    (handlers.InferPodInfo); not found: the targets' message with its suggestions."""
    from kubectl_mesh.errors import UsageError
    from kubectl_mesh.kube.targets import Target, find_object

    target = Target.parse(text if "/" in text else f"svc/{text}")
    if target.kind != "service":
        raise UsageError(f"{text!r} is not a service", hint="describe service NAME[.NAMESPACE]")
    _, obj = find_object(session.api, target, namespace)
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def _pick_pod(session, text: str, namespace: str, stderr: IO[str]) -> tuple[str, str]:
    """(namespace, name) of the pod `text` means: a pod, or one pod of `deploy/x`, `svc/x`...:
    a Running one with a sidecar, Ready if possible (said on stderr when there is a choice)."""
    from kubectl_mesh.kube.targets import Target, target_pods

    pods, what = target_pods(session.api, Target.parse(text), namespace)
    if len(pods) == 1:
        return pods[0].namespace, pods[0].name
    ranked = sorted(pods, key=lambda p: (p.phase != "Running", not p.has_proxy, not p.ready,
                                         p.terminating, p.name))
    chosen = ranked[0]
    print(f"using pod {chosen.ref} ({len(pods)} pods match {what})", file=stderr)
    return chosen.namespace, chosen.name


def _read(session, stderr: IO[str]):
    """analyze's cluster reader over describe's kinds; a kind RBAC refuses is one warning, and
    the sections that need it say they could not tell (Pods and Services: an error). A kind
    the cluster does not serve (an Istio CRD not installed) has no objects: nothing to say."""
    from kubectl_mesh.analyze import cluster
    from kubectl_mesh.analyze.resources import Store
    from kubectl_mesh.describe.objects import KINDS

    # analyze's warnings name its analyzers; describe says what it means for the description
    found = cluster.read(session.api, lambda line: None, kinds=KINDS)
    for kind in ("Pod", "Service"):
        if kind in found.refused:
            raise ForbiddenError(f"cannot list {kind.lower()}s in every namespace, which "
                                 "describe reads to find the pod's services and gateways",
                                 hint=f"ask for RBAC verb list on {kind.lower()}s")
    for kind in sorted(found.refused):
        plural = KINDS[kind][1]
        print(f"warning: cannot list {plural} in every namespace (ask for RBAC verb list on "
              f"{plural}); what depends on {kind} objects is described as unknown or left out",
              file=stderr, flush=True)
    store = Store()
    store.extend(found.resources)
    return store, set(found.missing), set(found.refused)


def _root_namespace(session, istio_namespace: str) -> str:
    """The mesh config's rootNamespace (ConfigMap `istio`, key `mesh`), else the Istio
    namespace, as mesh.DefaultMeshConfig has it."""
    from kubectl_mesh.analyze.resources import as_dict
    from kubectl_mesh.errors import MeshError

    try:
        cm = session.api.get_resource("configmaps", istio_namespace, "istio", allow_missing=True)
    except MeshError:
        return istio_namespace
    text = as_dict(as_dict(cm).get("data")).get("mesh")
    if not isinstance(text, str):
        return istio_namespace
    import yaml

    try:
        mesh = yaml.safe_load(text)
    except yaml.YAMLError:
        return istio_namespace
    root = mesh.get("rootNamespace") if isinstance(mesh, dict) else None
    return root if isinstance(root, str) and root else istio_namespace


def _findings(store, unavailable: set) -> dict:
    """analyze's messages (every analyzer whose kinds could be read), by the object they are
    about."""
    from kubectl_mesh.analyze.analyzers import all_analyzers
    from kubectl_mesh.analyze.command import analyze

    analyzers = [a for a in all_analyzers() if not (a.inputs & unavailable)]
    by_object: dict = {}
    for message in analyze(store, analyzers, None):
        res = message.resource
        if res is not None:
            by_object.setdefault((res.kind, res.namespace, res.name), []).append(message)
    return by_object


def _read_proxies(session, pods: list, stderr: IO[str]) -> dict:
    from kubectl_mesh.describe import live
    from kubectl_mesh.kube.pods import Pod
    from kubectl_mesh.session import for_each

    targets = [Pod.from_json(p.obj) for p in pods]
    out = {}
    for pod, config, error in for_each(targets, lambda p: live.read(session, p),
                                       concurrency=4, stderr=stderr):
        if error is not None:
            raise error
        if config.error is not None:
            print(f"warning: cannot read the config of proxy {pod.ref}: {config.error}; "
                  "what it carries is not checked", file=stderr)
        out[pod.ref] = config
    return out


def _write(report: dict, fmt: str, stdout: IO[str]) -> None:
    if fmt in ("json", "yaml"):
        from kubectl_mesh import output

        output.write(stdout, fmt, data=report)
    else:
        from kubectl_mesh.describe.render import render

        stdout.write(render(report))

