"""The injector MutatingWebhookConfigurations the sandbox istiod installs for its revision and
its tags, listed through REAL kubectl with label selectors (istioctl's selectors)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.mark.double_only("on the real backend the default revision's webhook is the sandbox's "
                         "injection server, called by URL and so without istio.io/rev "
                         "(sandbox/real/injection.py)")
def test_istiod_installs_its_injector_webhooks_with_revision_and_tag_labels(sandbox):
    sandbox.wait_for(lambda: sandbox.kubectl("get", "mutatingwebhookconfigurations",
                                             "istio-revision-tag-prod", check=False
                                             ).returncode == 0, timeout=30,
                     what="istiod's webhooks")
    out = sandbox.kubectl("get", "mutatingwebhookconfigurations", "-l", "istio.io/rev=default",
                          "-o", "json")
    names = sorted(h["metadata"]["name"] for h in json.loads(out.stdout)["items"])
    assert names == ["istio-revision-tag-prod", "istio-sidecar-injector"]
    # istioctl's selector for the revision's own webhooks: with the tag label excluded
    out = sandbox.kubectl("get", "mutatingwebhookconfigurations", "-l",
                          "istio.io/rev=default,!istio.io/tag", "-o", "name")
    assert out.stdout.split() == ["mutatingwebhookconfiguration.admissionregistration.k8s.io/"
                                  "istio-sidecar-injector"]


@pytest.mark.double_only("on the real backend the default revision's webhook is the sandbox's "
                         "own, called by URL (no kube-proxy serves istiod's Service: "
                         "sandbox/real/injection.py)")
def test_the_revisions_webhook_calls_istiods_service(sandbox):
    hook = json.loads(sandbox.kubectl("get", "mutatingwebhookconfigurations",
                                      "istio-sidecar-injector", "-o", "json").stdout)
    assert hook["webhooks"][0]["clientConfig"]["service"] == {
        "name": "istiod", "namespace": "istio-system", "path": "/inject", "port": 443}
