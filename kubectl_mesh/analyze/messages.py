"""Istio's analysis message catalogue (the codes, levels and texts istioctl analyze prints) and
one message about one object.

The entries are copied from istio/pkg/config/analysis/msg/messages.yaml; a message's text is
its template filled Go-style (`%s`, `%q`, `%d`, `%v`), its documentation URL the one
istio/pkg/config/analysis/diag/message.go builds (`<docs>/config/analysis/ist0101/?ref=...`).
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

# istio.io serves the analysis pages per minor version (`v1.28`); `latest` is the current one.
DOCS_URL = "https://istio.io/latest/docs/reference/config/analysis"
DOC_REF = "istioctl-analyze"


class Level(enum.IntEnum):
    """diag.Level: the lower the value, the worse (Error sorts first, as in istioctl)."""

    ERROR = 0
    WARNING = 1
    INFO = 2

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def parse(cls, text: str) -> "Level":
        """`Error`/`error`, `Warning`, `Info` (what --output-threshold/--failure-threshold take)."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"invalid level {text!r} (one of: Info, Warning, Error)") from None


@dataclass(frozen=True)
class MessageType:
    code: str
    name: str
    level: Level
    template: str


def _t(code: str, name: str, level: Level, template: str) -> MessageType:
    return MessageType(code, name, level, template)


DEPRECATED = _t("IST0002", "Deprecated", Level.WARNING, "Deprecated: %s")
REFERENCED_RESOURCE_NOT_FOUND = _t(
    "IST0101", "ReferencedResourceNotFound", Level.ERROR, "Referenced %s not found: %q")
NAMESPACE_NOT_INJECTED = _t(
    "IST0102", "NamespaceNotInjected", Level.INFO,
    "The namespace is not enabled for Istio injection. Run 'kubectl label namespace %s "
    "istio-injection=enabled' to enable it, or 'kubectl label namespace %s "
    "istio-injection=disabled' to explicitly mark it as not needing injection.")
POD_MISSING_PROXY = _t(
    "IST0103", "PodMissingProxy", Level.WARNING,
    "The pod %s is missing the Istio proxy. This can often be resolved by restarting or "
    "redeploying the workload.")
SCHEMA_VALIDATION_ERROR = _t(
    "IST0106", "SchemaValidationError", Level.ERROR, "Schema validation error: %v")
MISPLACED_ANNOTATION = _t(
    "IST0107", "MisplacedAnnotation", Level.WARNING,
    "Misplaced annotation: %s can only be applied to %s")
UNKNOWN_ANNOTATION = _t(
    "IST0108", "UnknownAnnotation", Level.WARNING, "Unknown annotation: %s")
CONFLICTING_SIDECAR_WORKLOAD_SELECTORS = _t(
    "IST0110", "ConflictingSidecarWorkloadSelectors", Level.ERROR,
    "The Sidecars %v in namespace %q select the same workload pod %q, which can lead to "
    "undefined behavior.")
MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS = _t(
    "IST0111", "MultipleSidecarsWithoutWorkloadSelectors", Level.ERROR,
    "The Sidecars %v in namespace %q have no workload selector, which can lead to undefined "
    "behavior.")
NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL = _t(
    "IST0128", "NoServerCertificateVerificationDestinationLevel", Level.WARNING,
    "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to "
    "validate server identity for host: %s")
NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL = _t(
    "IST0129", "NoServerCertificateVerificationPortLevel", Level.WARNING,
    "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to "
    "validate server identity for host: %s at port %s")
DEPRECATED_ANNOTATION = _t(
    "IST0135", "DeprecatedAnnotation", Level.INFO,
    "Annotation %q has been deprecated%s and may not work in future Istio versions.")
CONFLICTING_GATEWAYS = _t(
    "IST0145", "ConflictingGateways", Level.ERROR,
    "Conflict with gateways %s (workload selector %s, port %s, hosts %v).")
DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES = _t(
    "IST0116", "DeploymentAssociatedToMultipleServices", Level.WARNING,
    "This deployment %s is associated with multiple services using port %d but different "
    "protocols: %v")
DEPLOYMENT_CONFLICTING_PORTS = _t(
    "IST0137", "DeploymentConflictingPorts", Level.WARNING,
    "This deployment %s is associated with multiple services %v using targetPort %q but "
    "different ports: %v.")
INVALID_APPLICATION_UID = _t(
    "IST0144", "InvalidApplicationUID", Level.WARNING,
    "User ID (UID) 1337 is reserved for the sidecar proxy.")
NO_MATCHING_WORKLOADS_FOUND = _t(
    "IST0127", "NoMatchingWorkloadsFound", Level.WARNING,
    "No matching workloads for this resource with the following labels: %s")
JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN = _t(
    "IST0149", "JwtClaimBasedRoutingWithoutRequestAuthN", Level.ERROR,
    "The virtual service uses the JWT claim based routing (key: %s) but found no request "
    "authentication for the gateway (%s) pod (%s). The request authentication must first be "
    "applied for the gateway pods to validate the JWT token and make the claims available for "
    "routing.")
PODS_ISTIO_PROXY_IMAGE_MISMATCH_IN_NAMESPACE = _t(
    "IST0158", "PodsIstioProxyImageMismatchInNamespace", Level.WARNING,
    "The Istio proxy images of the pods running in the namespace do not match the image "
    "defined in the injection configuration (pod names: %v). This often happens after "
    "upgrading the Istio control-plane and can be fixed by redeploying the pods.")
SCHEMA_WARNING = _t(
    "IST0133", "SchemaWarning", Level.WARNING, "Schema validation warning: %v")
SERVICE_ENTRY_ADDRESSES_REQUIRED = _t(
    "IST0134", "ServiceEntryAddressesRequired", Level.WARNING,
    "ServiceEntry addresses are required for this protocol.")
CONFLICTING_SERVICE_ENTRY_PROTOCOL = _t(
    "IST0177", "ConflictingServiceEntryProtocol", Level.WARNING,
    "Multiple ServiceEntries (%s) define the same host %q and port %d with conflicting "
    "protocols (%s).")
CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS = _t(
    "IST0109", "ConflictingMeshGatewayVirtualServiceHosts", Level.ERROR,
    "The VirtualServices %s associated with mesh gateway define the same host %s which can lead "
    "to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a "
    "single resource.")
VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED = _t(
    "IST0112", "VirtualServiceDestinationPortSelectorRequired", Level.ERROR,
    "This VirtualService routes to a service %q that exposes multiple ports %v. Specifying a port "
    "in the destination is required to disambiguate.")
# Retired in Istio's catalogue (with the `Policy` kind); kept for analyzers/auth.py.
MTLS_POLICY_CONFLICT = _t(
    "IST0113", "MTLSPolicyConflict", Level.ERROR,
    "A DestinationRule and Policy are in conflict with regards to mTLS for host %s. The "
    "DestinationRule %q specifies that mTLS must be %t but the Policy object %q specifies %s.")
PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION = _t(
    "IST0118", "PortNameIsNotUnderNamingConvention", Level.INFO,
    "Port name %s (port: %d, targetPort: %s) doesn't follow the naming convention of Istio port.")
VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY = _t(
    "IST0132", "VirtualServiceHostNotFoundInGateway", Level.WARNING,
    "one or more host %v defined in VirtualService %s not found in Gateway %s.")
EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME = _t(
    "IST0150", "ExternalNameServiceTypeInvalidPortName", Level.WARNING,
    "Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and "
    "unmatched traffic for ports serving TCP protocol from being forwarded correctly")
GATEWAY_PORT_NOT_DEFINED_ON_SERVICE = _t(
    "IST0162", "GatewayPortNotDefinedOnService", Level.WARNING,
    "The gateway is listening on a target port (port %d) that is not defined in the Service "
    "associated with its workload instances (Pod selector %s). If you need to access the gateway "
    "port through the gateway Service, it will not be available.")
DESTINATION_RULE_SUBSET_NOT_SELECT_PODS = _t(
    "IST0173", "DestinationRuleSubsetNotSelectPods", Level.ERROR,
    "The Subset %s defined in the DestinationRule does not select any pods. Which may lead to "
    "503 UH (NoHealthyUpstream).")
UNKNOWN_DESTINATION_RULE_HOST = _t(
    "IST0174", "UnknownDestinationRuleHost", Level.WARNING,
    "The host %s defined in the DestinationRule does not match any services in the mesh.")
INVALID_EXTERNAL_CONTROL_PLANE_CONFIG = _t(
    "IST0163", "InvalidExternalControlPlaneConfig", Level.WARNING,
    "The hostname (%s) that was provided for the webhook (%s) to reach the ingress gateway on "
    "the external control plane cluster %s. Traffic may not flow properly.")
EXTERNAL_CONTROL_PLANE_ADDRESS_IS_NOT_A_HOSTNAME = _t(
    "IST0164", "ExternalControlPlaneAddressIsNotAHostname", Level.INFO,
    "The address (%s) that was provided for the webhook (%s) to reach the ingress gateway on "
    "the external control plane cluster is an IP address. This is not recommended for a "
    "production environment.")

# `--live` findings only the proxies know (kubectl_mesh/analyze/live.py): this suite's own
# codes, outside Istio's IST range, documented in the README's analyze section.
LIVE_NOT_IN_PROXY = _t(
    "MESH0001", "NotInProxyConfig", Level.WARNING,
    "%s %s is not in the config of proxy %s yet (%s): istiod has not pushed it, or the proxy "
    "rejected it; see kubectl mesh sync %s")
LIVE_CONFIG_REJECTED = _t(
    "MESH0002", "ProxyRejectedConfig", Level.ERROR,
    "Proxy %s rejected (NACKed) istiod's latest %s push: %s")
LIVE_ROUTE_ERROR = _t(
    "MESH0003", "GatewayRouteError", Level.ERROR,
    "Gateway proxy %s, %s: %s (fix: %s)")
LIVE_ROUTE_WARNING = _t(
    "MESH0004", "GatewayRouteWarning", Level.WARNING,
    "Gateway proxy %s, %s: %s (fix: %s)")
LIVE_CODES = frozenset(t.code for t in (LIVE_NOT_IN_PROXY, LIVE_CONFIG_REJECTED,
                                        LIVE_ROUTE_ERROR, LIVE_ROUTE_WARNING))
README_URL = "https://github.com/kubectl-mesh/kubectl-mesh#analyze-live-codes"

CATALOGUE: tuple[MessageType, ...] = (
    REFERENCED_RESOURCE_NOT_FOUND, NAMESPACE_NOT_INJECTED, POD_MISSING_PROXY,
    CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
    VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED, MTLS_POLICY_CONFLICT,
    PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION, VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
    EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME, GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS, UNKNOWN_DESTINATION_RULE_HOST,
    SCHEMA_VALIDATION_ERROR, MISPLACED_ANNOTATION, UNKNOWN_ANNOTATION,
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS, MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
    NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL, DEPRECATED_ANNOTATION, CONFLICTING_GATEWAYS,
    DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES, DEPLOYMENT_CONFLICTING_PORTS,
    INVALID_APPLICATION_UID, SCHEMA_WARNING, SERVICE_ENTRY_ADDRESSES_REQUIRED,
    CONFLICTING_SERVICE_ENTRY_PROTOCOL, NO_MATCHING_WORKLOADS_FOUND,
    JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN, PODS_ISTIO_PROXY_IMAGE_MISMATCH_IN_NAMESPACE,
    DEPRECATED, INVALID_EXTERNAL_CONTROL_PLANE_CONFIG,
    EXTERNAL_CONTROL_PLANE_ADDRESS_IS_NOT_A_HOSTNAME,
    LIVE_NOT_IN_PROXY, LIVE_CONFIG_REJECTED, LIVE_ROUTE_ERROR, LIVE_ROUTE_WARNING,
)
CODES = frozenset(t.code for t in CATALOGUE)

_VERB = re.compile(r"%([sqdvt%])")


def go_format(template: str, params: Sequence[Any]) -> str:
    """fmt.Sprintf for the verbs the catalogue uses: %s %v (strings, Go slices `[a b]`),
    %q (a Go-quoted string), %d, %t."""
    values = iter(params)

    def one(match: re.Match) -> str:
        verb = match.group(1)
        if verb == "%":
            return "%"
        value = next(values)
        if verb == "q":
            return json.dumps(str(value), ensure_ascii=False)
        if verb == "t":
            return "true" if value else "false"
        if isinstance(value, (list, tuple)):
            return "[" + " ".join(str(v) for v in value) + "]"
        return str(value)

    return _VERB.sub(one, template)


@dataclass(frozen=True)
class Message:
    """One finding: a message type filled with its parameters, about one object (`resource`,
    a `resources.Resource`), at `line` of that object's file when known."""

    type: MessageType
    params: tuple = ()
    resource: Any = None
    line: int = 0
    text: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", go_format(self.type.template, self.params))

    @property
    def origin(self) -> str:
        """`VirtualService istioinaction/catalog-v1-v2`: kind and namespace/name."""
        return self.resource.friendly_name if self.resource is not None else ""

    @property
    def reference(self) -> Optional[str]:
        """`file.yaml:173` for an object read from a file (the line of the offending field, else
        the first line of its document); None for an object from the cluster."""
        if self.resource is None or self.resource.source is None:
            return None
        return f"{self.resource.source}:{self.line or self.resource.document_line()}"

    @property
    def documentation_url(self) -> str:
        if self.type.code in LIVE_CODES:
            return README_URL
        return f"{DOCS_URL}/{self.type.code.lower()}/?ref={DOC_REF}"

    def __str__(self) -> str:
        """istioctl's log line: `Error [IST0101] (VirtualService ns/name file:line) text`."""
        origin = ""
        if self.resource is not None:
            ref = self.reference
            origin = f" ({self.origin}{' ' + ref if ref else ''})"
        return f"{self.type.level.label} [{self.type.code}]{origin} {self.text}"

    def as_dict(self) -> dict:
        """diag.Message.Unstructured: the keys in the order istioctl's JSON has them."""
        data: dict = {"code": self.type.code, "documentationUrl": self.documentation_url,
                      "level": self.type.level.label, "message": self.text}
        if self.resource is not None:
            data["origin"] = self.origin
            if self.reference is not None:
                data["reference"] = self.reference
        return data

    def sort_key(self) -> tuple:
        """diag.Messages.Sort: level, code, the object (kind, namespace/name), then the text."""
        res = self.resource
        return (self.type.level, self.type.code, res is not None,
                res.comparator if res is not None else "", str(self))
