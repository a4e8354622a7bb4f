"""The analyzers, one module per kind as in istio/pkg/config/analysis/analyzers/.

Each analyzer is a name (istioctl's), the kinds it reads, and a function of the store that
yields messages. Every one indexes what it looks up (by host, by namespace/name) once, so a
mesh of N objects is analyzed in O(N), never by comparing objects pairwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Store


@dataclass(frozen=True)
class Analyzer:
    name: str
    inputs: frozenset
    run: Callable[[Store], Iterable[Message]]


def all_analyzers() -> tuple[Analyzer, ...]:
    from kubectl_mesh.analyze.analyzers import (auth, authz, deployment, deprecation,
                                                destinationrule, externalcontrolplane, gateway,
                                                injection, injectionimage, istioannotations,
                                                schema, service, serviceentry, sidecar,
                                                virtualservice)

    return (
        Analyzer("annotations.K8sAnalyzer", frozenset({"Namespace", "Service", "Pod", "Deployment"}),
                 istioannotations.k8s_annotations),
        Analyzer("auth.AuthorizationPoliciesAnalyzer",
                 frozenset({"AuthorizationPolicy", "Namespace", "Pod"}),
                 authz.authorization_policies),
        Analyzer("auth.MTLSAnalyzer",
                 frozenset({"DestinationRule", "PeerAuthentication", "Service"}),
                 auth.mtls_conflicts),
        Analyzer("applicationUID.Analyzer", frozenset({"Pod", "Deployment"}),
                 deployment.application_uid),
        Analyzer("deployment.MultiServiceAnalyzer",
                 frozenset({"Service", "Deployment", "Namespace"}),
                 deployment.service_associations),
        Analyzer("deprecation.DeprecationAnalyzer", frozenset({"VirtualService", "Sidecar"}),
                 deprecation.fields),
        Analyzer("destinationrule.CaCertificateAnalyzer", frozenset({"DestinationRule"}),
                 destinationrule.ca_certificates),
        Analyzer("destinationrule.SubsetSelectPodAnalyzer",
                 frozenset({"DestinationRule", "Pod", "Service", "ServiceEntry"}),
                 destinationrule.subsets_select_pods),
        Analyzer("externalcontrolplane.ExternalControlPlaneAnalyzer",
                 frozenset({"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}),
                 externalcontrolplane.webhook_urls),
        Analyzer("gateway.ConflictingGatewayAnalyzer", frozenset({"Gateway", "Pod"}),
                 gateway.conflicting_gateways),
        Analyzer("gateway.IngressGatewayPortAnalyzer", frozenset({"Gateway", "Pod", "Service"}),
                 gateway.selector_and_ports),
        Analyzer("gateway.SecretAnalyzer", frozenset({"Gateway", "Pod", "Secret"}),
                 gateway.credential_secrets),
        Analyzer("injection.ImageAnalyzer", frozenset({"Namespace", "Pod", "ConfigMap"}),
                 injectionimage.proxy_images),
        Analyzer("injection.Analyzer", frozenset({"Namespace", "Pod"}), injection.injection),
        Analyzer("schema.ValidationAnalyzer", frozenset({"VirtualService", "DestinationRule", "Gateway", "ServiceEntry"}),
                 schema.validation),
        Analyzer("service.PortNameAnalyzer", frozenset({"Service"}), service.port_names),
        Analyzer("serviceentry.Analyzer", frozenset({"ServiceEntry"}),
                 serviceentry.protocol_addresses),
        Analyzer("serviceentry.ConflictingServiceEntryProtocolAnalyzer",
                 frozenset({"ServiceEntry"}), serviceentry.conflicting_protocols),
        Analyzer("sidecar.SelectorAnalyzer", frozenset({"Sidecar", "Pod", "Namespace"}),
                 sidecar.selectors),
        Analyzer("virtualservice.ConflictingMeshGatewayHostsAnalyzer",
                 frozenset({"VirtualService"}), virtualservice.conflicting_mesh_hosts),
        Analyzer("virtualservice.DestinationHostAnalyzer",
                 frozenset({"VirtualService", "Service", "ServiceEntry"}),
                 virtualservice.destination_hosts),
        Analyzer("virtualservice.DestinationRuleAnalyzer",
                 frozenset({"VirtualService", "DestinationRule"}), virtualservice.destination_subsets),
        Analyzer("virtualservice.JWTClaimRouteAnalyzer",
                 frozenset({"VirtualService", "RequestAuthentication", "Gateway", "Pod"}),
                 virtualservice.jwt_claim_routes),
        Analyzer("virtualservice.GatewayAnalyzer", frozenset({"VirtualService", "Gateway"}),
                 virtualservice.gateways),
    )


def run_all(store: Store, analyzers: Iterable[Analyzer]) -> Iterator[Message]:
    for analyzer in analyzers:
        yield from analyzer.run(store)
