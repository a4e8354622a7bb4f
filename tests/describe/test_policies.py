"""describe units: the effective PeerAuthentication, Sidecar and AuthorizationPolicies."""

from __future__ import annotations

from tests.describe.objects import describe, pod

BASE = pod("web-1", {"app": "web", "version": "v1"}, namespace="shop") + """\
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
"""


def pa(name: str, namespace: str, mode: str = "", selector: str = "", ports: str = "",
       created: str = "2026-01-01T00:00:00Z") -> str:
    spec = []
    if selector:
        spec.append(f"  selector: {{matchLabels: {selector}}}")
    if mode:
        spec.append(f"  mtls: {{mode: {mode}}}")
    if ports:
        spec.append(f"  portLevelMtls: {ports}")
    return (f"---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
            f"metadata: {{name: {name}, namespace: {namespace}, creationTimestamp: '{created}'}}\n"
            f"spec:\n" + ("\n".join(spec) if spec else "  {}") + "\n")


def peer_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("Effective PeerAuthentication:")
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith(("Skipping", "Applied Sidecar", "Applied Author",
                                        "--"))), len(lines))
    return lines[start:end]


def test_no_peer_authentication_is_permissive_and_mtls_not_required():
    report, text = describe(BASE, "web-1", namespace="shop")
    assert peer_lines(text) == ["Effective PeerAuthentication:",
                                "   Workload mTLS mode: PERMISSIVE",
                                "   mTLS required: no (plaintext is accepted)"]
    assert report["peerAuthentication"]["scope"] == "default"


def test_mesh_wide_strict_then_namespace_permissive_overrides_it():
    mesh_wide = pa("default", "istio-system", "STRICT")
    _, text = describe(BASE + mesh_wide, "web-1", namespace="shop")
    assert peer_lines(text) == ["Effective PeerAuthentication:",
                                "   Workload mTLS mode: STRICT",
                                "      (from the mesh-wide PeerAuthentication "
                                "default.istio-system)",
                                "   mTLS required: yes (plaintext is refused)",
                                "Applied PeerAuthentication:",
                                "   default.istio-system"]
    namespace = pa("relaxed", "shop", "PERMISSIVE")
    report, text = describe(BASE + mesh_wide + namespace, "web-1", namespace="shop")
    assert "   Workload mTLS mode: PERMISSIVE\n      (from the namespace PeerAuthentication " \
        "relaxed.shop)\n" in text
    assert report["peerAuthentication"]["scope"] == "namespace"
    assert "   default.istio-system, relaxed.shop" in text


def test_workload_policy_with_unset_mode_inherits_and_sets_port_levels():
    namespace = pa("ns", "shop", "STRICT")
    workload = pa("web", "shop", "UNSET", selector="{app: web}",
                  ports="{'8080': {mode: DISABLE}, '9090': {mode: UNSET}}")
    _, text = describe(BASE + namespace + workload, "web-1", namespace="shop")
    assert peer_lines(text) == ["Effective PeerAuthentication:",
                                "   Workload mTLS mode: STRICT",
                                "      (from the namespace PeerAuthentication ns.shop)",
                                "   Port Level mTLS mode:",
                                "      8080: DISABLE",
                                "      9090: STRICT",
                                "   mTLS required: on port(s) 9090 only",
                                "Applied PeerAuthentication:",
                                "   ns.shop, web.shop"]


def test_other_namespaces_other_workloads_and_root_workload_policies_do_not_apply():
    others = (pa("other-ns", "payments", "STRICT")
              + pa("other-app", "shop", "STRICT", selector="{app: cart}")
              + pa("root-workload", "istio-system", "STRICT", selector="{app: web}"))
    report, text = describe(BASE + others, "web-1", namespace="shop")
    assert "   Workload mTLS mode: PERMISSIVE" in text
    # the root namespace's workload policy selects the pod but Istio ignores it for the mode
    assert report["peerAuthentication"]["applied"] == ["root-workload.istio-system"]


def test_the_oldest_namespace_policy_wins():
    old = pa("old", "shop", "DISABLE", created="2025-01-01T00:00:00Z")
    new = pa("new", "shop", "STRICT", created="2026-06-01T00:00:00Z")
    _, text = describe(BASE + new + old, "web-1", namespace="shop")
    assert "   Workload mTLS mode: DISABLE" in text


def test_refused_peer_authentications_are_unknown_not_permissive():
    _, text = describe(BASE, "web-1", namespace="shop",
                       refused=("PeerAuthentication", "AuthorizationPolicy", "Sidecar"))
    assert peer_lines(text)[1] == ("   Workload mTLS mode: unknown (PeerAuthentications could "
                                   "not be listed)")
    assert "PERMISSIVE" not in text
    assert "Applied AuthorizationPolicy: unknown" in text
    assert "Applied Sidecar: unknown" in text


SIDECARS = """\
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec: {egress: [{hosts: ['*/*']}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ns-default, namespace: shop}
spec: {egress: [{hosts: ['./*', 'istio-system/*']}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: shop}
spec:
  workloadSelector: {labels: {app: web}}
  egress: [{hosts: ['./catalog.shop.svc.cluster.local']}]
"""


def test_the_most_specific_sidecar_applies():
    _, text = describe(BASE + SIDECARS, "web-1", namespace="shop")
    assert "Applied Sidecar:\n   web.shop (egress hosts ./catalog.shop.svc.cluster.local)\n" in text
    without_workload = SIDECARS[:SIDECARS.rindex("---")]
    _, text = describe(BASE + without_workload, "web-1", namespace="shop")
    assert "Applied Sidecar:\n   ns-default.shop (egress hosts ./*, istio-system/*)\n" in text
    root_only = SIDECARS[:SIDECARS.index("---", 5)]
    _, text = describe(BASE + root_only, "web-1", namespace="shop")
    assert "Applied Sidecar:\n   default.istio-system" in text
    _, text = describe(BASE, "web-1", namespace="shop")
    assert "Sidecar" not in text


def test_authorization_policies_selecting_the_pod():
    policies = """\
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: istio-system}
spec: {action: DENY, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-viewers, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  rules: [{from: [{source: {namespaces: [shop]}}]}, {to: [{operation: {methods: [GET]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cart-only, namespace: shop}
spec: {selector: {matchLabels: {app: cart}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: waypoint, namespace: shop}
spec: {targetRefs: [{kind: Service, name: web}]}
"""
    _, text = describe(BASE + policies, "web-1", namespace="shop")
    assert ("Applied AuthorizationPolicy:\n   deny-all.istio-system (DENY, 1 rules), "
            "web-viewers.shop (ALLOW, 2 rules)\n") in text
    assert "cart-only" not in text and "waypoint" not in text


class _Api:
    def __init__(self, answer):
        self.answer = answer

    def get_resource(self, resource, namespace, name, allow_missing=False):
        assert (resource, namespace, name) == ("configmaps", "istio-system", "istio")
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class _Session:
    def __init__(self, answer):
        self.api = _Api(answer)


def test_the_root_namespace_comes_from_the_mesh_config():
    from kubectl_mesh.describe.command import _root_namespace
    from kubectl_mesh.errors import ForbiddenError

    def root(answer):
        return _root_namespace(_Session(answer), "istio-system")

    assert root({"data": {"mesh": "rootNamespace: mesh-root\ndefaultConfig: {}\n"}}) == "mesh-root"
    assert root({"data": {"mesh": "defaultConfig: {}\n"}}) == "istio-system"
    assert root(None) == "istio-system"  # no ConfigMap
    assert root({"data": {"mesh": ": ["}}) == "istio-system"  # not YAML
    assert root({"data": {"mesh": "- a list"}}) == "istio-system"
    assert root(ForbiddenError("cannot get configmaps")) == "istio-system"


def test_a_mesh_wide_policy_in_a_custom_root_namespace():
    _, text = describe(BASE + pa("default", "mesh-root", "STRICT"), "web-1", namespace="shop",
                       root="mesh-root")
    assert "   Workload mTLS mode: STRICT\n" in text
