"""The real API server calls an admission webhook configured by `service:` (not `url:`) in a
pod on the netns pod network, through the node's service proxy: kube-apiserver resolves a
webhook Service to its ClusterIP (cmd/kube-apiserver/app/server.go `buildServiceResolver`:
`NewClusterIPServiceResolver` unless --enable-aggregator-routing), dials it from the host's
namespace, and the nat OUTPUT rules of sandbox/real/kubelet/serviceproxy.py DNAT it to the
pod. The step istiod-as-a-pod needs (its sidecar injector and validation webhooks).

What a broken service proxy gets wrong: the API server cannot reach the webhook
("failed calling webhook ... dial tcp <ClusterIP>:443"), so with failurePolicy Fail every
labelled create is refused with that error instead of the webhook's own answer."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

# An AdmissionReview v1 server on :8443 (TLS from $TLS_CERT/$TLS_KEY): refuses objects named
# blocked-*, naming the pod that answered.
HOOK = """
import http.server, json, os, ssl, tempfile
d = tempfile.mkdtemp()
open(d + '/tls.crt', 'w').write(os.environ['TLS_CERT'])
open(d + '/tls.key', 'w').write(os.environ['TLS_KEY'])
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        request = review['request']
        name = request['object']['metadata'].get('name', '')
        response = {'uid': request['uid'], 'allowed': not name.startswith('blocked-')}
        if not response['allowed']:
            response['status'] = {'code': 403,
                                  'message': 'refused by the hook in pod ' + os.environ['POD_NAME']}
        body = json.dumps({'apiVersion': 'admission.k8s.io/v1', 'kind': 'AdmissionReview',
                           'response': response}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = http.server.ThreadingHTTPServer(('0.0.0.0', 8443), Hook)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(d + '/tls.crt', d + '/tls.key')
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


@pytest.fixture(scope="module")
def cluster(kubelet_clusters):
    return kubelet_clusters(pod_network="netns")


def kubectl(cp, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), *args], input=input,
                          capture_output=True, text=True, timeout=60)


def test_the_api_server_calls_a_webhook_pod_through_its_service(cluster):
    cp, _ = cluster
    serving = cp.ca.issue("hook-serving", "hook.default.svc",
                          server_names=("hook.default.svc",), client=False)
    objects = [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "hook", "namespace": "default"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "hook"}},
                  "template": {"metadata": {"labels": {"app": "hook"}}, "spec": {"containers": [{
                      "name": "hook", "image": "busybox",
                      "command": [sys.executable, "-c", HOOK],
                      "env": [{"name": "TLS_CERT", "value": serving.cert.read_text()},
                              {"name": "TLS_KEY", "value": serving.key.read_text()}],
                      "ports": [{"containerPort": 8443}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hook", "namespace": "default"},
         "spec": {"selector": {"app": "hook"}, "ports": [{"port": 443, "targetPort": 8443}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "hook"},
         "webhooks": [{
             "name": "hook.default.svc", "sideEffects": "None", "failurePolicy": "Fail",
             "admissionReviewVersions": ["v1"], "timeoutSeconds": 5,
             "objectSelector": {"matchLabels": {"hooked": "yes"}},
             "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                        "resources": ["configmaps"]}],
             "clientConfig": {
                 "service": {"namespace": "default", "name": "hook", "path": "/validate"},
                 "caBundle": base64.b64encode(cp.ca.pair.cert.read_bytes()).decode()}}]}]
    out = kubectl(cp, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": objects}))
    assert out.returncode == 0, out.stderr

    def create(name: str) -> subprocess.CompletedProcess:
        return kubectl(cp, "apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": {"hooked": "yes"}}}))

    # until the pod serves, the API server's call fails (failurePolicy Fail: refused too)
    deadline, last = time.monotonic() + 90, None
    while time.monotonic() < deadline:
        last = create("blocked-one")
        if "refused by the hook in pod hook-" in last.stderr:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the webhook's own answer never came: {last.stderr if last else ''}")
    assert last.returncode != 0
    assert "admission webhook \"hook.default.svc\" denied the request" in last.stderr
    allowed = create("fine")
    assert allowed.returncode == 0, allowed.stderr
