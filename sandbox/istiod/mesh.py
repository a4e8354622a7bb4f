"""An immutable index over one snapshot of Kubernetes objects, with Istio's lookup rules."""

from __future__ import annotations

from dataclasses import dataclass, field

DOMAIN_SUFFIX = "svc.cluster.local"
ISTIO_API = "networking.istio.io"


def labels_of(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("labels") or {}


def name_of(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def namespace_of(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("namespace") or "default"


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A map selector matches when every key/value is present; an empty selector matches nothing
    for Services (Kubernetes semantics: a Service without selector has no automatic endpoints)."""
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def resolve_host(host: str, namespace: str) -> str:
    """Expand a short Istio host name relative to `namespace` (`catalog` → `catalog.ns.svc...`)."""
    if "/" in host:
        host = host.split("/", 1)[1]
    if host == "*" or host.startswith("*."):
        return host
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.{DOMAIN_SUFFIX}"
    if len(parts) == 2:
        return f"{host}.{DOMAIN_SUFFIX}"
    if host.endswith(".svc"):
        return f"{host}.cluster.local"
    return host


def host_matches(pattern: str, host: str) -> bool:
    """Istio host matching: exact, `*`, or `*.suffix` wildcard against a concrete host."""
    if pattern == "*" or pattern == host:
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    if host.startswith("*."):
        return pattern.endswith(host[1:])
    return False


def pod_ip(pod: dict) -> str | None:
    return (pod.get("status") or {}).get("podIP") or None


def pod_ready(pod: dict) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def container_port(pod: dict, port_name: str) -> int | None:
    """A named port of the pod, looked up as `FindPort` does (containers, then native
    sidecars: k8s.io/endpointslice utils.go)."""
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in (spec.get("containers") or []) + sidecars:
        for port in container.get("ports") or []:
            if port.get("name") == port_name:
                return int(port["containerPort"])
    return None


def target_port(service_port: dict, pod: dict | None) -> int | None:
    """The pod port a Service port forwards to; named targetPorts resolve via container ports."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    return container_port(pod, target) if pod is not None else None


@dataclass(frozen=True)
class Service:
    obj: dict

    @property
    def name(self) -> str:
        return name_of(self.obj)

    @property
    def namespace(self) -> str:
        return namespace_of(self.obj)

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.{DOMAIN_SUFFIX}"

    @property
    def selector(self) -> dict:
        return (self.obj.get("spec") or {}).get("selector") or {}

    @property
    def ports(self) -> list[dict]:
        return [p for p in (self.obj.get("spec") or {}).get("ports") or [] if "port" in p]

    @property
    def cluster_ip(self) -> str | None:
        ip = (self.obj.get("spec") or {}).get("clusterIP")
        return ip if ip and ip != "None" else None

    def port(self, number: int | None) -> dict | None:
        """The Service port `number`, or the only/first port when `number` is None."""
        if number is None:
            return self.ports[0] if self.ports else None
        return next((p for p in self.ports if int(p["port"]) == int(number)), None)


@dataclass(frozen=True)
class Mesh:
    """One consistent snapshot of the objects istiod translates."""

    services: tuple[Service, ...] = ()
    pods: tuple[dict, ...] = ()
    virtual_services: tuple[dict, ...] = ()
    destination_rules: tuple[dict, ...] = ()
    gateways: tuple[dict, ...] = ()
    # (address, port) the API server serves on: the endpoint of `default/kubernetes`
    api_server: tuple[str, int] | None = None
    _pods_by_id: dict = field(default_factory=dict, compare=False, repr=False)
    _services_by_fqdn: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_objects(cls, objects: list[dict], api_server: tuple[str, int] | None = None) -> Mesh:
        by_kind: dict[str, dict[tuple[str, str], dict]] = {}
        for obj in objects:
            if not isinstance(obj, dict):
                continue
            kind = obj.get("kind", "")
            api = obj.get("apiVersion", "")
            if kind in ("VirtualService", "DestinationRule", "Gateway") and not api.startswith(ISTIO_API):
                continue  # e.g. gateway.networking.k8s.io Gateways are not Istio Gateways
            # A later document with the same name replaces an earlier one, like `kubectl apply`.
            by_kind.setdefault(kind, {})[(namespace_of(obj), name_of(obj))] = obj

        def ordered(kind: str) -> list[dict]:
            # (namespace, name) order: translation output, and so the pushed versions, must not
            # depend on the order in which watch events arrived.
            return [o for _, o in sorted(by_kind.get(kind, {}).items())]

        pods = ordered("Pod")
        services = tuple(Service(s) for s in ordered("Service"))
        by_fqdn: dict[str, Service] = {}
        for service in services:
            by_fqdn.setdefault(service.fqdn, service)
        return cls(
            services=services,
            pods=tuple(pods),
            virtual_services=tuple(ordered("VirtualService")),
            destination_rules=tuple(ordered("DestinationRule")),
            gateways=tuple(ordered("Gateway")),
            api_server=api_server,
            _pods_by_id={(namespace_of(p), name_of(p)): p for p in pods},
            _services_by_fqdn=by_fqdn,
        )

    def pod(self, name: str, namespace: str) -> dict | None:
        return self._pods_by_id.get((namespace, name))

    def service_by_host(self, fqdn: str) -> Service | None:
        if self._services_by_fqdn or not self.services:
            return self._services_by_fqdn.get(fqdn)
        return next((s for s in self.services if s.fqdn == fqdn), None)

    def services_selecting(self, labels: dict, namespace: str) -> list[Service]:
        return [s for s in self.services
                if s.namespace == namespace and selector_matches(s.selector, labels)]

    def pods_for(self, service: Service, subset_labels: dict | None = None) -> list[dict]:
        """Pods that back `service` (and carry `subset_labels`), with an IP, in name order."""
        result = []
        for pod in self.pods:
            labels = labels_of(pod)
            if namespace_of(pod) != service.namespace or not pod_ip(pod):
                continue
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            if not selector_matches(service.selector, labels):
                continue
            if subset_labels and not all(labels.get(k) == v for k, v in subset_labels.items()):
                continue
            result.append(pod)
        return result

    def api_server_endpoint(self, service: Service) -> tuple[str, int] | None:
        """The API server's address when `service` is its `default/kubernetes` Service.
        Real istiod takes it from the EndpointSlice the API server's endpoint reconciler
        writes (its advertised address and secure port: pkg/controlplane/reconcilers
        endpointsadapter.go `endpointSliceFromEndpoints`); the sandbox has no such slice, as
        validation refuses a loopback address (`ValidateEndpointIP`), so istiod is told the
        address the API server advertises in discovery (`source.advertised_address`), else
        (the API double advertises none) the one its kubeconfig reaches it on – not the
        `kubernetes` ClusterIP a pod's kubeconfig names."""
        if (service.namespace, service.name) != ("default", "kubernetes") or \
                (service.obj.get("spec") or {}).get("selector") is not None:
            return None
        return self.api_server

    def destination_rule_for(self, fqdn: str) -> dict | None:
        """The DestinationRule for a host; the first by (namespace, name) wins, as in Istio."""
        for dr in self.destination_rules:
            host = resolve_host((dr.get("spec") or {}).get("host", ""), namespace_of(dr))
            if host == fqdn:
                return dr
        return None

    def gateway_named(self, ref: str, vs_namespace: str) -> dict | None:
        ns, _, name = ref.rpartition("/")
        ns = ns or vs_namespace
        return next((g for g in self.gateways
                     if name_of(g) == name and namespace_of(g) == ns), None)
