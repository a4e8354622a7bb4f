"""A proxy-config table of one pod named `NAME.NAMESPACE` starts its port-forward and Envoy's
answer beside the pod GETs that check the name (`proxyconfig.command.fetch_dumps`), and still
shows the pod the name means when that is another one (an exact dotted pod name wins:
`kube.targets.find_object`)."""

from __future__ import annotations

import time

import pytest

from kubectl_mesh.clusteroptions import ClusterOptions
from kubectl_mesh.proxyconfig.command import fetch_dumps
from kubectl_mesh.proxyconfig.options import ProxyConfigOptions
from kubectl_mesh.proxyconfig.views import RoutesView

RTT = 0.4


def _gateway(sandbox) -> str:
    return sandbox.kubectl("get", "pods", "-n", "istio-system", "-l", "istio=ingressgateway",
                           "-o", "jsonpath={.items[0].metadata.name}").stdout


def _routes(sandbox, target: str, namespace: str = "default"):
    options = ProxyConfigOptions(RoutesView(), target=target, cluster=ClusterOptions(
        kubeconfig=str(sandbox.kubeconfig), namespace=namespace))
    return fetch_dumps(options, stderr=None)


@pytest.mark.double_only("the round trip is the double's model (set_rtt)")
@pytest.mark.slow  # pays modelled round trips
def test_the_fetch_overlaps_the_pod_lookup(sandbox):
    target = f"{_gateway(sandbox)}.istio-system"
    _routes(sandbox, target)  # warm: imports, bytecode
    sandbox.set_rtt(RTT)
    try:
        started = time.monotonic()
        [(ref, _, dump)] = _routes(sandbox, target)
        took = time.monotonic() - started
    finally:
        sandbox.set_rtt(0)
    assert ref == target and "http.8080" in _route_names(dump)
    # One after the other: the API connection, GET pod NAME.NAMESPACE in `default` (404),
    # GET pod NAME in NAMESPACE, the port-forward's connection and upgrade, the admin GET:
    # 6 round trips. Overlapped: the longer of the 3 + 3, plus the CPU of a small dump.
    assert took < 5 * RTT, f"{took:.2f} s: the fetch waited for the pod lookup"


DOTTED_POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: istioinaction, labels: {{app: dotted-gateway}}}}
spec:
  containers: [{{name: app, image: sandbox/app:x}}]
"""


def _route_names(dump) -> set[str]:
    return {config.name for config in dump.routes}


def test_an_exact_dotted_pod_name_still_wins(sandbox):
    gateway = _gateway(sandbox)
    target = f"{gateway}.istio-system"
    # a pod in istioinaction (injected: a sidecar of its own) whose whole name is the text
    sandbox.kubectl("apply", "-f", "-", input=DOTTED_POD.format(name=target))
    try:
        sandbox.kubectl("wait", "-n", "istioinaction", "--for=condition=Ready", f"pod/{target}",
                        "--timeout=60s", timeout=90)
        # from istioinaction the text names that pod: its sidecar's routes, not the
        # gateway's that were fetched while the name was looked up
        [(ref, _, dump)] = _routes(sandbox, target, namespace="istioinaction")
        assert ref == f"{target}.istioinaction"
        assert "http.8080" not in _route_names(dump) and "80" in _route_names(dump)
        # from another namespace the same text is the gateway
        [(ref, _, dump)] = _routes(sandbox, target, namespace="default")
        assert ref == target and "http.8080" in _route_names(dump)
    finally:
        sandbox.kubectl("delete", "pod", "-n", "istioinaction", target, timeout=90)


def test_one_tls_context_for_the_api_and_the_port_forwards(sandbox):
    # the kubeconfig's CA and client key pair are loaded once per command, not per client
    from kubectl_mesh.session import Session
    with Session.open(ClusterOptions(kubeconfig=str(sandbox.kubeconfig))) as session:
        assert session.tls is not None
        assert session.tls.context is session.api.ssl_context()
