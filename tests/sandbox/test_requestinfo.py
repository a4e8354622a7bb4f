"""The double's request attributes, as k8s.io/apiserver pkg/endpoints/request/requestinfo.go
`NewRequestInfo` derives them (what constrained impersonation authorizes the caller for)."""

from __future__ import annotations

import pytest

from sandbox.apiserver.auth import Attributes, request_attributes

CASES = [
    ("GET", "/api/v1/namespaces/ns/pods", {},
     Attributes("list", "/api/v1/namespaces/ns/pods", True, "", "pods", "ns", "")),
    ("GET", "/api/v1/namespaces/ns/pods", {"watch": ["true"]},
     Attributes("watch", "/api/v1/namespaces/ns/pods", True, "", "pods", "ns", "")),
    ("GET", "/api/v1/namespaces/ns/pods", {"watch": ["0"]},
     Attributes("list", "/api/v1/namespaces/ns/pods", True, "", "pods", "ns", "")),
    ("POST", "/api/v1/namespaces/ns/pods/p/portforward", {},
     Attributes("create", "/api/v1/namespaces/ns/pods/p/portforward", True, "",
                "pods/portforward", "ns", "p")),
    ("GET", "/apis/apps/v1/namespaces/ns/deployments/d", {},
     Attributes("get", "/apis/apps/v1/namespaces/ns/deployments/d", True, "apps",
                "deployments", "ns", "d")),
    ("DELETE", "/apis/networking.istio.io/v1/namespaces/ns/virtualservices", {},
     Attributes("deletecollection", "/apis/networking.istio.io/v1/namespaces/ns/virtualservices",
                True, "networking.istio.io", "virtualservices", "ns", "")),
    # a namespace is the resource `namespaces` named ns; its status a subresource
    ("GET", "/api/v1/namespaces/ns", {},
     Attributes("get", "/api/v1/namespaces/ns", True, "", "namespaces", "ns", "ns")),
    ("PUT", "/api/v1/namespaces/ns/status", {},
     Attributes("update", "/api/v1/namespaces/ns/status", True, "", "namespaces/status", "ns",
                "ns")),
    ("GET", "/api/v1/nodes", {}, Attributes("list", "/api/v1/nodes", True, "", "nodes", "", "")),
    # the deprecated verb prefix; proxy has no subresource
    ("GET", "/api/v1/watch/namespaces/ns/pods", {},
     Attributes("watch", "/api/v1/watch/namespaces/ns/pods", True, "", "pods", "ns", "")),
    ("GET", "/api/v1/namespaces/ns/pods/p/proxy/x", {},
     Attributes("get", "/api/v1/namespaces/ns/pods/p/proxy/x", True, "", "pods/proxy", "ns",
                "p")),
    # not resource requests: the method is the verb
    ("GET", "/version", {}, Attributes("get", "/version")),
    ("GET", "/api/v1", {}, Attributes("get", "/api/v1")),
    ("GET", "/apis/apps/v1", {}, Attributes("get", "/apis/apps/v1")),
    ("GET", "/openapi/v3/apis/apps/v1", {}, Attributes("get", "/openapi/v3/apis/apps/v1")),
]


@pytest.mark.parametrize("method,path,query,expected", CASES,
                         ids=[f"{c[0]} {c[1]}{'?watch' if c[2] else ''}" for c in CASES])
def test_request_attributes(method, path, query, expected):
    assert request_attributes(method, path, query) == expected
