"""The lean API client and target resolution against the sandbox's API server."""

from __future__ import annotations

import base64
import json
import socket

import pytest
import yaml

from kube_sandbox import add_user, self_signed
from kubectl_mesh.errors import (ExitCode, ForbiddenError, NotFoundError, UnreachableError,
                                 UsageError)
from kubectl_mesh.kube.api import KubeApi
from kubectl_mesh.kube.kubeconfig import load_config
from kubectl_mesh.kube.targets import Target, find_object, list_proxies, resolve

EXTRA = """
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: plain}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: sandbox/app:web, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: broken, namespace: plain, labels: {app: broken}}
spec:
  containers: [{name: app, image: sandbox/app:x, command: ["/nonexistent/kube-tests-binary"]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dup, namespace: plain}
spec:
  replicas: 0
  selector: {matchLabels: {app: dup}}
  template:
    metadata: {labels: {app: dup}}
    spec: {containers: [{name: dup, image: sandbox/app:dup}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: dup, namespace: plain}
spec:
  replicas: 0
  serviceName: dup
  selector: {matchLabels: {app: dup-sts}}
  template:
    metadata: {labels: {app: dup-sts}}
    spec: {containers: [{name: dup, image: sandbox/app:dup}]}
---
apiVersion: v1
kind: Pod
metadata: {name: catalog.istioinaction, namespace: default, labels: {app: dotted}}
spec:
  containers: [{name: app, image: sandbox/app:x, command: ["sleep", "600"]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: zero, namespace: istioinaction}
spec:
  replicas: 0
  selector: {matchLabels: {app: zero}}
  template:
    metadata: {labels: {app: zero}}
    spec: {containers: [{name: zero, image: sandbox/app:zero}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: istioinaction}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: sandbox/app:db, ports: [{containerPort: 5432}]}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: istioinaction}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: sandbox/app:agent, ports: [{containerPort: 9000}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: external, namespace: istioinaction}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata:
  name: optout
  namespace: istioinaction
  labels: {app: optout, sidecar.istio.io/inject: "false"}
spec:
  containers: [{name: app, image: sandbox/app:x, command: ["sleep", "600"]}]
---
apiVersion: v1
kind: Namespace
metadata: {name: ambient, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: amb, namespace: ambient, labels: {app: amb}}
spec:
  containers: [{name: app, image: sandbox/app:x, command: ["sleep", "600"]}]
---
apiVersion: v1
kind: Namespace
metadata: {name: later}
---
apiVersion: v1
kind: Pod
metadata: {name: early, namespace: later, labels: {app: early}}
spec:
  containers: [{name: app, image: sandbox/app:x, command: ["sleep", "600"]}]
"""


@pytest.fixture(scope="module")
def cluster(sandbox):
    sandbox.apply(EXTRA)
    sandbox.wait_running("istioinaction", "app in (db,agent)", 2)
    sandbox.wait_running("plain", "app=web", 1)
    for ns, app in (("istioinaction", "optout"), ("ambient", "amb"), ("later", "early")):
        sandbox.wait_running(ns, f"app={app}", 1)
    # injection enabled after the pod was created: it has no sidecar until restarted
    sandbox.kubectl("label", "namespace", "later", "istio-injection=enabled")
    return sandbox


@pytest.fixture(scope="module")
def api(cluster):
    with KubeApi(load_config(str(cluster.kubeconfig))) as client:
        yield client


def pods_by_kubectl(sandbox, namespace, selector):
    """{name: ip} of the pods, as kubectl (not our code) reports them."""
    items = json.loads(sandbox.kubectl("get", "pods", "-n", namespace, "-l", selector,
                                       "-o", "json"))["items"]
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in items}


def resolved(api, text, namespace="istioinaction"):
    return {p.name: p.ip for p in resolve(api, Target.parse(text), namespace)}


@pytest.mark.parametrize("text, namespace, selector", [
    ("deploy/catalog", "istioinaction", "app=catalog,version=v1"),
    ("deployment/catalog-v2", "istioinaction", "app=catalog,version=v2"),
    ("deploy/catalog-v2.istioinaction", "default", "app=catalog,version=v2"),
    ("catalog", "istioinaction", "app=catalog,version=v1"),  # bare workload name
    ("catalog-v2.istioinaction", "default", "app=catalog,version=v2"),
    ("svc/catalog", "istioinaction", "app=catalog"),
    ("service/catalog.istioinaction", "istio-system", "app=catalog"),
    ("sts/db", "istioinaction", "app=db"),
    ("ds/agent.istioinaction", "default", "app=agent"),
    ("deploy/istio-ingressgateway.istio-system", "default", "app=istio-ingressgateway"),
], ids=lambda v: str(v))
def test_target_forms_resolve_to_their_pods(cluster, api, text, namespace, selector):
    expected = pods_by_kubectl(cluster, namespace if "." not in text else text.rsplit(".", 1)[1],
                               selector)
    assert expected
    assert resolved(api, text, namespace) == expected


def test_pod_and_replicaset_targets(cluster, api):
    v2 = pods_by_kubectl(cluster, "istioinaction", "app=catalog,version=v2")
    first = sorted(v2)[0]
    assert resolved(api, first) == {first: v2[first]}
    assert resolved(api, f"pod/{first}.istioinaction", "default") == {first: v2[first]}
    rs = first.rsplit("-", 1)[0]
    assert resolved(api, f"rs/{rs}") == v2
    pods = resolve(api, Target.parse("deploy/catalog-v2"), "istioinaction")
    assert [p.name for p in pods] == sorted(v2)  # sorted by name
    assert all(p.proxy_type == "sidecar" and p.ready and p.owner == f"ReplicaSet/{rs}"
               for p in pods)


def test_selector_target(cluster, api):
    expected = pods_by_kubectl(cluster, "istioinaction", "version=v2")
    pods = resolve(api, Target.from_selector("version=v2"), "istioinaction")
    assert {p.name: p.ip for p in pods} == expected and len(expected) == 2


def test_gateway_is_a_router(api):
    (gw,) = resolve(api, Target.parse("svc/istio-ingressgateway"), "istio-system")
    assert gw.containers == ("istio-proxy",) and gw.proxy_type == "router"


def test_exact_dotted_pod_name_wins(api):
    # `catalog.istioinaction` in namespace default is a real pod name there
    kind, obj = find_object(api, Target.parse("catalog.istioinaction"), "default")
    assert (kind, obj["metadata"]["name"], obj["metadata"]["namespace"]) == (
        "pod", "catalog.istioinaction", "default")
    # ... elsewhere the same text means deployment catalog in istioinaction
    kind, obj = find_object(api, Target.parse("catalog.istioinaction"), "istio-system")
    assert (kind, obj["metadata"]["namespace"]) == ("deployment", "istioinaction")


def test_list_proxies(cluster, api):
    refs = [p.ref for p in list_proxies(api)]
    assert refs == sorted(refs, key=lambda r: (r.split(".", 1)[1], r))
    assert any(r.startswith("istio-ingressgateway-") for r in refs)
    assert not any(r.startswith(("istiod-", "web-", "broken")) for r in refs)
    assert len([r for r in refs if r.endswith(".istioinaction")]) == 5  # 3 catalog, db, agent


@pytest.mark.parametrize("text, namespace, error, message", [
    ("deploy/catlog", "istioinaction", NotFoundError,
     'deployment "catlog" not found in namespace istioinaction (did you mean "catalog"'),
    ("catlog", "istioinaction", NotFoundError,
     'pod or workload "catlog" not found in namespace istioinaction (did you mean "catalog"'),
    ("deploy/web", "istioinaction", NotFoundError,
     'deployment "web" not found in namespace istioinaction: it is in namespace plain '
     '(add -n plain)'),
    ("web", "default", NotFoundError,
     'pod or workload "web" not found in namespace default: it is in namespace plain'),
    ("pod/catalog-nope", "istioinaction", NotFoundError,
     'pod "catalog-nope" not found in namespace istioinaction (kubectl get pods -n istioinaction)'),
    ("svc/catalog.nosuchns", "default", NotFoundError, 'and there is no namespace "nosuchns"'),
    ("deploy/zero", "istioinaction", NotFoundError,
     "deployment zero.istioinaction has no pods (is it scaled to 0?)"),
    ("pod/broken", "plain", UnreachableError,
     "pod broken.plain is Failed, not Running (kubectl describe pod broken -n plain)"),
    ("deploy/web", "plain", NotFoundError,
     ".plain has no istio-proxy container (namespace plain is not labelled for injection: "
     "kubectl label namespace plain istio-injection=enabled, then restart the pod)"),
    ("svc/istiod.istio-system", "default", NotFoundError,
     "has no istio-proxy container (it is an Istio control-plane pod (istiod), not a proxy"),
    ("pod/optout", "istioinaction", NotFoundError,
     'optout.istioinaction has no istio-proxy container (injection is turned off for it '
     '(sidecar.istio.io/inject: "false" on the pod)'),
    ("pod/amb", "ambient", NotFoundError, "(it is in ambient mode: no sidecar, its traffic goes "
                                          "through the node's ztunnel"),
    ("pod/early", "later", NotFoundError, "(injection is enabled for it, so it was created "
                                          "before that (or while the injector was down): "
                                          "restart it"),
    ("svc/external", "istioinaction", NotFoundError,
     "service external.istioinaction has no selector"),
    ("dup", "plain", UsageError, "say which (deployment/dup or statefulset/dup)"),
], ids=["typo-deploy", "typo-bare", "other-namespace", "other-namespace-bare", "no-pod", "no-namespace", "scaled-to-0", "failed-pod",
        "no-sidecar", "istiod-no-sidecar", "opted-out", "ambient", "before-injection",
        "no-selector", "ambiguous"])
def test_resolve_errors(api, text, namespace, error, message):
    with pytest.raises(error) as exc:
        resolve(api, Target.parse(text), namespace)
    assert message in str(exc.value)
    assert type(exc.value) is error


def test_selector_matching_nothing(api):
    with pytest.raises(NotFoundError, match='no pods in namespace istioinaction match the '
                                            'selector "app=nothing"') as exc:
        resolve(api, Target.from_selector("app=nothing"), "istioinaction")
    assert exc.value.exit_code == ExitCode.NOT_FOUND


def test_error_exit_codes(api):
    for text, ns, code in (("deploy/zero", "istioinaction", ExitCode.NOT_FOUND),
                           ("pod/broken", "plain", ExitCode.UNREACHABLE),
                           ("dup", "plain", ExitCode.USAGE)):
        with pytest.raises(Exception) as exc:
            resolve(api, Target.parse(text), ns)
        assert exc.value.exit_code == code, text


# ---- the API client's error translation ------------------------------------------------------


def test_404_is_not_found(api):
    with pytest.raises(NotFoundError, match='"ghost" not found'):
        api.get_resource("deployments", "istioinaction", "ghost")
    assert api.get_resource("deployments", "istioinaction", "ghost", allow_missing=True) is None


def test_401_names_the_credentials(cluster, tmp_path):
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    # the bad token as the only credential: the real backend's admin has a client certificate
    doc["users"][0]["user"] = {"token": "not-a-valid-token"}
    bad = tmp_path / "bad-token"
    bad.write_text(yaml.safe_dump(doc))
    with KubeApi(load_config(str(bad))) as client, pytest.raises(ForbiddenError) as exc:
        client.list_pods("istioinaction")
    assert "rejected our credentials (401)" in str(exc.value)
    assert "check the kubeconfig's user 'sandbox-admin' / token" in str(exc.value)
    assert exc.value.exit_code == ExitCode.FORBIDDEN


def test_403_names_verb_resource_and_namespace(cluster):
    path = add_user(cluster, "no-list", ["list pods@istioinaction", "get deployments"])
    with KubeApi(load_config(str(path))) as client:
        with pytest.raises(ForbiddenError) as exc:
            client.list_pods("istioinaction")
        assert str(exc.value) == ("cannot list pods in namespace istioinaction: ask for RBAC "
                                  'verb list on pods (as user "no-list")')
        with pytest.raises(ForbiddenError, match="cannot get deployments.apps in namespace x: "
                                                 "ask for RBAC verb get on deployments.apps"):
            client.get_resource("deployments", "x", "catalog")
        assert client.list_pods("plain")  # only istioinaction is denied


def test_unreachable_names_server_and_context(cluster, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nobody listens there
    cfg = load_config(str(cluster.kubeconfig))
    dead = tmp_path / "dead"
    dead.write_text(cluster.kubeconfig.read_text().replace(cfg.server, f"https://127.0.0.1:{port}"))
    with KubeApi(load_config(str(dead)), timeout=2) as client, \
            pytest.raises(UnreachableError) as exc:
        client.list_pods("default")
    assert f"cannot reach the API server https://127.0.0.1:{port} (context sandbox): " \
           "connection refused" in str(exc.value)
    assert exc.value.exit_code == ExitCode.UNREACHABLE


def test_wrong_ca_is_unreachable_with_a_hint(cluster, tmp_path):
    cfg = load_config(str(cluster.kubeconfig))
    other_ca = base64.b64encode(self_signed("other")[0]).decode()
    text = cluster.kubeconfig.read_text()
    start = text.index("certificate-authority-data: ") + len("certificate-authority-data: ")
    end = text.index("\n", start)
    wrong = tmp_path / "wrong-ca"
    wrong.write_text(text[:start] + other_ca + text[end:])
    with KubeApi(load_config(str(wrong))) as client, pytest.raises(UnreachableError) as exc:
        client.list_pods("default")
    assert "TLS handshake" in str(exc.value) and cfg.server in str(exc.value)
    assert "certificate-authority" in str(exc.value)


def test_bare_name_guess_survives_rbac_on_workloads(cluster):
    """A user who may read pods but not StatefulSets still gets the Deployment guess."""
    path = add_user(cluster, "no-sts", ["get statefulsets", "list statefulsets"])
    with KubeApi(load_config(str(path))) as client:
        assert resolved(client, "catalog-v2") == pods_by_kubectl(
            cluster, "istioinaction", "app=catalog,version=v2")
        with pytest.raises(NotFoundError, match='did you mean "catalog"'):
            resolve(client, Target.parse("catlog"), "istioinaction")


def _dial_error(config, timeout=2.0) -> UnreachableError:
    from kubectl_mesh.kube.wschannel import dial
    with pytest.raises(UnreachableError) as exc:
        dial(config, "plain", "web-0", 15000, timeout, None, lambda message: None)
    return exc.value


def test_port_forward_and_api_requests_word_transport_failures_alike(cluster, tmp_path):
    """One translator (kube.api.transport_error) for the API client and the port-forward
    dialler: the same three cases, the same words, plus what the port-forward was for."""
    text = cluster.kubeconfig.read_text()
    server = load_config(str(cluster.kubeconfig)).server
    forward = " for a port-forward to pod web-0.plain"

    with socket.socket() as s:  # nobody listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = tmp_path / "dead"
    dead.write_text(text.replace(server, f"https://127.0.0.1:{port}"))
    refused = _dial_error(load_config(str(dead)))
    assert str(refused).startswith(f"cannot reach the API server https://127.0.0.1:{port} "
                                   f"(context sandbox){forward}: connection refused")
    assert refused.exit_code == ExitCode.UNREACHABLE and "is the cluster running" in str(refused)

    start = text.index("certificate-authority-data: ") + len("certificate-authority-data: ")
    wrong = tmp_path / "wrong-ca"
    wrong.write_text(text[:start] + base64.b64encode(self_signed("other")[0]).decode()
                     + text[text.index("\n", start):])
    tls = _dial_error(load_config(str(wrong)))
    assert f"TLS handshake with the API server {server}" in str(tls)
    assert f"{forward} failed: certificate verify failed" in str(tls)
    assert "certificate-authority" in str(tls)

    silent = socket.socket()  # accepts, never answers the TLS handshake
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        mute = tmp_path / "mute"
        mute.write_text(text.replace(server, f"https://127.0.0.1:{silent.getsockname()[1]}"))
        late = _dial_error(load_config(str(mute)), timeout=0.5)
    finally:
        silent.close()
    assert f"did not answer{forward} within 0.5s" in str(late)
    assert "--request-timeout" in str(late)
