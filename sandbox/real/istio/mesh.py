"""`python -m sandbox up --backend real --istio real`: a scenario on real Istio.

Istio is installed as `istioctl install` installs the minimal profile (`install(...,
istiod="pod")`: CRDs, istiod's Deployment and Service, the webhooks by `service:`), with the
values that make istiod's config loadable by upstream Envoy (`UPSTREAM_ENVOY_POD_VALUES`,
docs/real-istio.md finding 2) and the access log the Istio in Action book's install has (its
demo profile: manifests/profiles/demo.yaml `meshConfig.accessLogFile: /dev/stdout`), which
the sandbox istiod always writes (sandbox/istiod/listeners.py ACCESS_LOG). The node is the
sandbox kubelet of `kubelet_for(cp, None, pod_network="netns")`: istiod's pod is the real
pilot-discovery, injected pods run the real istio-init iptables and pilot-agent + Envoy.

The scenario is then applied as its YAML is, but for two things (`for_real_istio`):
- what the install provides: the scenario's stand-in for istiod (its Deployment and Service
  in istio-system, which the sandbox istiod runs as) is left out;
- the ingress gateway: the scenario's hand-written gateway Deployment (`proxy router` on the
  proxyv2 image, `sidecar.istio.io/inject: "false"`) has none of what pilot-agent needs (the
  istio-token and istiod-ca-cert volumes, ISTIO_META_* env: the injection template's), so it
  is deployed as users deploy one on real Istio
  (https://istio.io/latest/docs/setup/additional-setup/gateway/): the same Deployment with
  the pod label `sidecar.istio.io/inject: "true"`, the annotation
  `inject.istio.io/templates: gateway` and `image: auto`, no args; the `gateway` template
  (manifests/charts/istio-control/istio-discovery/files/gateway-injection-template.yaml)
  fills in `proxy router`, the env and the volumes. Names, labels, ports and securityContext
  stay the scenario's.
The scenario's Behaviour documents (sandbox-only) go to the kubelet as on the sandbox istiod."""

from __future__ import annotations

import copy

from . import UPSTREAM_ENVOY_POD_VALUES
from .manifests import NAMESPACE

ISTIOD_LABEL = "app=istiod"
# The access log of the book's install (demo profile), as the sandbox istiod writes it
ACCESS_LOG_VALUES = ("meshConfig.accessLogFile=/dev/stdout",)
INSTALL_VALUES = (*UPSTREAM_ENVOY_POD_VALUES, *ACCESS_LOG_VALUES)
GATEWAY_TEMPLATE = "gateway"


def is_istiod_stand_in(obj: dict) -> bool:
    """The scenario's istiod (Deployment or Service `istiod` in istio-system): real Istio's
    install provides both."""
    meta = obj.get("metadata") or {}
    return (obj.get("kind") in ("Deployment", "Service") and meta.get("name") == "istiod"
            and meta.get("namespace") == NAMESPACE)


def is_hand_written_gateway(obj: dict) -> bool:
    """A Deployment whose pods run `proxy router` in an istio-proxy container themselves,
    without injection: how the sandbox istiod's scenarios deploy a gateway."""
    if obj.get("kind") != "Deployment":
        return False
    template = ((obj.get("spec") or {}).get("template") or {})
    containers = (template.get("spec") or {}).get("containers") or []
    return any(c.get("name") == "istio-proxy" and (c.get("args") or [])[:2] == ["proxy", "router"]
               for c in containers)


def as_injected_gateway(deployment: dict) -> dict:
    """The gateway Deployment as users deploy one on real Istio: injected with the `gateway`
    template (see the module's docstring)."""
    d = copy.deepcopy(deployment)
    template = d["spec"]["template"]
    meta = template.setdefault("metadata", {})
    annotations = meta.setdefault("annotations", {})
    annotations.pop("sidecar.istio.io/inject", None)
    annotations["inject.istio.io/templates"] = GATEWAY_TEMPLATE
    meta.setdefault("labels", {})["sidecar.istio.io/inject"] = "true"
    for c in template["spec"]["containers"]:
        if c.get("name") == "istio-proxy":
            c["image"] = "auto"
            c.pop("args", None)
    return d


def for_real_istio(objects: list[dict]) -> list[dict]:
    """The scenario's objects to apply on real Istio (the module's docstring)."""
    return [as_injected_gateway(o) if is_hand_written_gateway(o) else o
            for o in objects if not is_istiod_stand_in(o)]
