"""describe units, pod and Service sections: what each must show, and what it must not."""

from __future__ import annotations

import textwrap

from tests.describe.objects import describe, pod

NS_INJECTED = """\
apiVersion: v1
kind: Namespace
metadata: {name: default, labels: {istio-injection: enabled}}
---
"""
SERVICE = """\
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {port: 9000, targetPort: 9000}
  - {name: dns, port: 53, targetPort: 53, protocol: UDP}
"""


def test_pod_header_revision_ports_and_no_warning_for_a_meshed_pod():
    _, text = describe(NS_INJECTED + pod("web-1", {"app": "web", "version": "v1"},
                                         ports=(("app", 8080, "http"), ("app", 9000, None)))
                       + SERVICE, "web-1")
    assert text.splitlines()[:3] == ["Pod: web-1", "   Pod Revision: default",
                                     "   Pod Ports: 8080 (app), 9000 (app)"]
    assert "not part of mesh" not in text and "Suggestion" not in text


def test_service_ports_named_target_port_auto_detect_and_udp_left_out():
    _, text = describe(NS_INJECTED + pod("web-1", {"app": "web", "version": "v1"},
                                         ports=(("app", 8080, "http"), ("app", 9000, None)))
                       + SERVICE, "web-1")
    lines = text.splitlines()
    start = lines.index("Service: web")
    assert lines[start - 1] == "--------------------"
    assert lines[start + 1:start + 3] == [
        "   Port: http 80/HTTP targets pod port 8080",  # targetPort by name: the container port
        "   Port:  9000/auto-detect targets pod port 9000"]  # istioctl's text for no name
    assert "53" not in text  # UDP: not supported by Istio, left out as istioctl does


def test_a_named_target_port_the_pod_lacks_is_istioctls_error():
    _, text = describe(NS_INJECTED + pod("web-1", {"app": "web"}, ports=(("app", 8080, "web"),))
                       + SERVICE, "web-1")
    assert "   no suitable port for manifest: uid-web-1" in text.splitlines()


def test_pod_without_sidecar_says_why_and_nothing_about_telemetry_labels():
    text_ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n---\n"
    report, text = describe(text_ns + pod("web-1", {"x": "y"}, sidecar=False) + SERVICE, "web-1")
    assert report["pod"]["meshed"] is False
    lines = text.splitlines()
    i = lines.index("WARNING: web-1 is not part of mesh; no Istio sidecar")
    assert lines[i + 1] == ("   namespace default is not labelled for injection: kubectl label "
                            "namespace default istio-injection=enabled, then restart the pod")
    assert "Suggestion" not in text
    assert "Pod Revision: \n" in text  # no injection status: no revision


def test_meshed_pod_without_app_and_version_labels_gets_istioctls_suggestions():
    _, text = describe(NS_INJECTED + pod("web-1", {"x": "y"}), "web-1")
    assert ("Suggestion: add required service name label for Istio telemetry. See "
            "https://istio.io/latest/docs/ops/deployment/requirements/.") in text
    assert "Suggestion: add required service revision label" in text


def test_no_service_selects_the_pod():
    other = SERVICE.replace("{app: web}", "{app: other}")
    report, text = describe(NS_INJECTED + pod("web-1", {"app": "web"}) + other, "web-1")
    assert report["services"] == []
    assert ("Warning: No Kubernetes Services select pod web-1 (see "
            "https://istio.io/docs/setup/kubernetes/additional-setup/requirements/ )") in text
    assert "Service:" not in text


def test_services_of_other_namespaces_and_without_selector_do_not_count():
    others = SERVICE.replace("namespace: default", "namespace: other") + \
        SERVICE.replace("name: web,", "name: manual,").replace("selector: {app: web}",
                                                               "selector: {}")
    report, _ = describe(NS_INJECTED + pod("web-1", {"app": "web"}) + others, "web-1")
    assert report["services"] == []


def test_uid_1337_in_an_app_container_and_a_not_ready_container():
    extra_pod = pod("web-1", {"app": "web", "version": "v1"}, run_as_user=1337, ready=False)
    _, text = describe(NS_INJECTED + extra_pod + SERVICE, "web-1")
    assert "WARNING: User ID (UID) 1337 is reserved for the sidecar proxy." in text
    assert "WARNING: Pod web-1 Container app NOT READY" in text


def test_a_pod_not_running_says_so_and_nothing_about_the_mesh():
    _, text = describe(NS_INJECTED + pod("web-1", {"app": "web"}, phase="Pending",
                                         sidecar=False) + SERVICE, "web-1")
    assert "   Pod is not Running (Pending)" in text
    assert "not part of mesh" not in text


def test_objects_outside_the_current_namespace_are_named_name_dot_namespace():
    text = NS_INJECTED.replace("default", "shop") + pod("web-1", {"app": "web"}, namespace="shop") \
        + SERVICE.replace("namespace: default", "namespace: shop")
    _, out = describe(text, "web-1", namespace="shop")
    assert "Service: web\n" in out
    _, out = describe(text, "web-1", namespace="default", where="shop")
    assert out.startswith("Pod: web-1.shop\n")
    assert "Service: web.shop\n" in out


def test_describe_service_without_pods_and_without_istio_pods():
    _, text = describe(NS_INJECTED + SERVICE, service="web")
    assert text == 'Service "web" has no pods.\n'
    _, text = describe(NS_INJECTED + pod("web-1", {"app": "web"}, sidecar=False) + SERVICE,
                       service="web")
    assert text == textwrap.dedent("""\
        Pod web-1: no container "istio-proxy" in pod
        Service "web" has no Istio pods.  (1 pods in service).
        Use `istioctl kube-inject` or redeploy with Istio automatic sidecar injection.
        """)
