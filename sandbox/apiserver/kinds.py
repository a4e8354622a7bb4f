"""The resource kinds the API double serves, and how each is discovered."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Kind:
    group: str  # "" for the core group
    versions: tuple[str, ...]  # first is the preferred (storage) version
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Storage key, e.g. `pods`, `deployments.apps`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def custom(self) -> bool:
        """A custom resource (a CRD's kind: Istio's), which takes no strategic merge patch."""
        return self.group.endswith(".istio.io")

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def api_version(self, version: str | None = None) -> str:
        v = version or self.versions[0]
        return f"{self.group}/{v}" if self.group else v


VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

KINDS = (
    Kind("", ("v1",), "Namespace", "namespaces", namespaced=False, short_names=("ns",),
         subresources=("status",)),
    Kind("", ("v1",), "Node", "nodes", namespaced=False, short_names=("no",)),
    Kind("", ("v1",), "Pod", "pods", short_names=("po",),
         subresources=("log", "exec", "attach", "portforward", "ephemeralcontainers", "status")),
    Kind("", ("v1",), "Service", "services", short_names=("svc",), subresources=("status",)),
    Kind("", ("v1",), "Endpoints", "endpoints", short_names=("ep",)),
    Kind("", ("v1",), "ConfigMap", "configmaps", short_names=("cm",)),
    Kind("", ("v1",), "ServiceAccount", "serviceaccounts", short_names=("sa",),
         subresources=("token",)),
    Kind("", ("v1",), "Secret", "secrets"),
    Kind("", ("v1",), "Event", "events", short_names=("ev",)),
    Kind("apps", ("v1",), "Deployment", "deployments", short_names=("deploy",),
         subresources=("status", "scale")),
    Kind("apps", ("v1",), "ReplicaSet", "replicasets", short_names=("rs",),
         subresources=("status", "scale")),
    Kind("apps", ("v1",), "StatefulSet", "statefulsets", short_names=("sts",),
         subresources=("status", "scale")),
    Kind("apps", ("v1",), "DaemonSet", "daemonsets", short_names=("ds",), subresources=("status",)),
    # istiod's injector webhooks, labelled istio.io/rev and istio.io/tag (istioctl's tags)
    Kind("admissionregistration.k8s.io", ("v1",), "MutatingWebhookConfiguration",
         "mutatingwebhookconfigurations", namespaced=False),
    # built in, as MutatingWebhookConfiguration: Istio's validator webhook configurations
    Kind("admissionregistration.k8s.io", ("v1",), "ValidatingWebhookConfiguration",
         "validatingwebhookconfigurations", namespaced=False),
    # create-only, never stored (sandbox/apiserver/tokens.py)
    Kind("authentication.k8s.io", ("v1",), "TokenReview", "tokenreviews", namespaced=False),
    Kind("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "VirtualService",
         "virtualservices", short_names=("vs",)),
    Kind("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "DestinationRule",
         "destinationrules", short_names=("dr",)),
    Kind("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "Gateway", "gateways",
         short_names=("gw",)),
    # The rest of the Istio CRDs `kubectl mesh analyze` reads (and Telemetry), as Istio's
    # manifests/charts/base/files/crd-all.gen.yaml defines them: group, served versions (the
    # preferred first: apiextensions' version priority puts v1 before v1alpha1), plural and
    # shortNames.
    Kind("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "ServiceEntry",
         "serviceentries", short_names=("se",)),
    Kind("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "Sidecar", "sidecars"),
    Kind("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "WorkloadEntry",
         "workloadentries", short_names=("we",)),
    Kind("security.istio.io", ("v1", "v1beta1"), "PeerAuthentication", "peerauthentications",
         short_names=("pa",)),
    Kind("security.istio.io", ("v1", "v1beta1"), "AuthorizationPolicy",
         "authorizationpolicies", short_names=("ap",)),
    Kind("security.istio.io", ("v1", "v1beta1"), "RequestAuthentication",
         "requestauthentications", short_names=("ra",)),
    Kind("telemetry.istio.io", ("v1", "v1alpha1"), "Telemetry", "telemetries",
         short_names=("telemetry",)),
)


def by_path(group: str, version: str, plural: str) -> Kind | None:
    for k in KINDS:
        if k.group == group and version in k.versions and k.plural == plural:
            return k
    return None


def by_kind(api_version: str, kind: str) -> Kind | None:
    group, _, version = api_version.rpartition("/")
    for k in KINDS:
        if k.group == group and version in k.versions and k.kind == kind:
            return k
    return None


def by_key(key: str) -> Kind:
    for k in KINDS:
        if k.key == key:
            return k
    raise KeyError(key)


def groups() -> dict[str, tuple[str, ...]]:
    """Non-core groups and their versions, preferred first."""
    out: dict[str, tuple[str, ...]] = {}
    for k in KINDS:
        if k.group:
            out.setdefault(k.group, k.versions)
    return out


def resource_list(group: str, version: str) -> dict:
    """The APIResourceList for one group version (discovery)."""
    resources = []
    for k in KINDS:
        if k.group != group or version not in k.versions:
            continue
        resources.append({
            "name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
            "kind": k.kind, "verbs": ["create"] if k.plural == "tokenreviews" else VERBS,
            "shortNames": list(k.short_names),
        })
        for sub in k.subresources:
            sub_kind = {"log": "Pod", "exec": "PodExecOptions", "attach": "PodAttachOptions",
                        "portforward": "PodPortForwardOptions", "scale": "Scale",
                        "token": "TokenRequest"}.get(sub, k.kind)
            verbs = {"log": ["get"], "exec": ["create", "get"], "attach": ["create", "get"],
                     "portforward": ["create", "get"], "token": ["create"]
                     }.get(sub, ["get", "patch", "update"])
            resources.append({"name": f"{k.plural}/{sub}", "singularName": "",
                              "namespaced": k.namespaced, "kind": sub_kind, "verbs": verbs})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}
