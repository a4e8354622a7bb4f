"""The injector MutatingWebhookConfigurations an Istio installation has, created by the
sandbox istiod at start (the sandbox has no installer; with Istio, helm or istioctl install
them): `istio-sidecar-injector[-<rev>]` labelled `istio.io/rev=<rev>`, and per revision tag
`istio-revision-tag-<tag>` labelled `istio.io/tag=<tag>`, `istio.io/rev=<rev>`
(manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml and
revision-tags-mwc.yaml; a namespace other than istio-system is appended to the names). The
tags come from REVISION_TAGS (comma-separated), the chart's `revisionTags` value.
"""

from __future__ import annotations

import logging

log = logging.getLogger("sandbox.istiod.webhooks")

PATH = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def _suffix(revision: str, namespace: str) -> str:
    rev = "" if revision == "default" else f"-{revision}"
    return rev + ("" if namespace == "istio-system" else f"-{namespace}")


def _webhook(prefix: str, revision: str, namespace: str, selector: dict) -> dict:
    return {"name": f"{prefix}sidecar-injector.istio.io",
            "clientConfig": {"service": {
                "name": "istiod" + ("" if revision == "default" else f"-{revision}"),
                "namespace": namespace, "path": "/inject", "port": 443}},
            "sideEffects": "None", "failurePolicy": "Fail", "reinvocationPolicy": "Never",
            "admissionReviewVersions": ["v1"],
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"]}],
            **selector}


def configurations(revision: str, namespace: str, tags: list[str]) -> list[dict]:
    """The MutatingWebhookConfigurations of this istiod's revision and its tags."""
    labels = {"app": "sidecar-injector", "app.kubernetes.io/name": "istiod",
              "istio.io/rev": revision}
    rev_selector = {"namespaceSelector": {"matchExpressions": [
        {"key": "istio.io/rev", "operator": "In", "values": [revision]},
        {"key": "istio-injection", "operator": "DoesNotExist"}]}}
    out = [{"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": f"istio-sidecar-injector{_suffix(revision, namespace)}",
                         "labels": labels},
            "webhooks": [_webhook("rev.namespace.", revision, namespace, rev_selector)]}]
    for tag in tags:
        tag_selector = {"namespaceSelector": {"matchExpressions": [
            {"key": "istio.io/rev", "operator": "In", "values": [tag]},
            {"key": "istio-injection", "operator": "DoesNotExist"}]}}
        name = f"istio-revision-tag-{tag}" + ("" if namespace == "istio-system"
                                               else f"-{namespace}")
        out.append({"apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": "MutatingWebhookConfiguration",
                    "metadata": {"name": name, "labels": {**labels, "istio.io/tag": tag}},
                    "webhooks": [_webhook("rev.namespace.", revision, namespace,
                                          tag_selector)]})
    return out


def install(session, server: str, revision: str, namespace: str, tags: list[str]) -> None:
    """Create (or leave as they are) this istiod's webhook configurations."""
    for body in configurations(revision, namespace, tags):
        resp = session.post(server + PATH, json=body, timeout=10)
        if resp.status_code not in (201, 409):
            log.warning("cannot create MutatingWebhookConfiguration %s: HTTP %d",
                        body["metadata"]["name"], resp.status_code)
