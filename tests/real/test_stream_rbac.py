"""Which rights a streaming subresource (exec, attach, portforward) needs, on the real API
server and on the API double, for the two ways clients open it.

The rule, from the real sources:
- the request's verb comes from its method (k8s.io/apiserver pkg/endpoints/request
  requestinfo.go `NewRequestInfo`): a WebSocket upgrade is a GET, so `get`; SPDY's POST is
  `create`;
- from 1.35 the handlers also demand `create` (k8s.io/kubernetes
  pkg/registry/core/pod/rest/subresources.go, `ExecREST/AttachREST/PortForwardREST.Connect` ->
  `ensureAuthorizedForVerb(..., "create")` behind the feature gate
  AuthorizePodWebsocketUpgradeCreatePermission, default on since 1.35).
The real API server is asked with the gate on (1.35+) and off (1.34 and older); the double is
asked as 1.37 (its default) and as 1.34 (`STATE/kube-version`). Both must give the rule's
answer. Authorization happens before the pod is looked up, so a pod that does not exist is
enough: an authorized request then gets 404, a refused one 403."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
import websocket
import yaml

from sandbox.testing import RunningSandbox, kubectl_binary

SUBRESOURCES = ("exec", "attach", "portforward")
RIGHTS = {"get": ("get",), "create": ("create",), "get+create": ("get", "create")}
QUERY = {"exec": "command=true&stdout=true", "attach": "stdout=true", "portforward": "ports=80"}


def allowed(rights: tuple[str, ...], transport: str, gate: bool) -> bool:
    needed = {"get"} if transport == "websocket" else {"create"}
    if gate:
        needed.add("create")
    return needed <= set(rights)


def outcome(status: int) -> str:
    assert status in (403, 404), f"unexpected status {status}"
    return "allowed" if status == 404 else "forbidden"


def websocket_status(url: str, sslopt: dict, header: list[str]) -> int:
    try:
        ws = websocket.create_connection(url.replace("https://", "wss://"), sslopt=sslopt,
                                         header=header, subprotocols=["v5.channel.k8s.io"],
                                         timeout=10)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code
    ws.close()
    return 101


def post_status(url: str, context: ssl.SSLContext, header: list[str]) -> int:
    req = urllib.request.Request(url, data=b"", method="POST",
                                 headers=dict(h.split(": ", 1) for h in header))
    try:
        with urllib.request.urlopen(req, context=context, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class RealServer:
    """Users with exactly `rights` on one subresource, as Roles bound in `default`."""

    def __init__(self, cp):
        self.cp = cp
        self.users: dict[tuple[str, str], object] = {}
        for sub in SUBRESOURCES:
            for label, verbs in RIGHTS.items():
                name = f"{sub}-{label.replace('+', '-')}"
                self._role(name, sub, verbs)
                self.users[(sub, label)] = name

    def _role(self, name: str, sub: str, verbs: tuple[str, ...]) -> None:
        docs = [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": name, "namespace": "default"},
             "rules": [{"apiGroups": [""], "resources": [f"pods/{sub}"], "verbs": list(verbs)}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": name, "namespace": "default"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}]},
        ]
        for d in docs:
            status, body = self.cp.request("POST", _collection(d), d)
            assert status == 201, body
        self.cp.add_user(name)

    def status(self, sub: str, label: str, transport: str) -> int:
        name = self.users[(sub, label)]
        pair = self.cp.ca.directory / f"user-{name}"
        url = f"{self.cp.server}/api/v1/namespaces/default/pods/nopod/{sub}?{QUERY[sub]}"
        if transport == "websocket":
            return websocket_status(url, {"ca_certs": str(self.cp.ca.pair.cert),
                                          "certfile": f"{pair}.crt", "keyfile": f"{pair}.key"}, [])
        context = ssl.create_default_context(cafile=str(self.cp.ca.pair.cert))
        context.load_cert_chain(f"{pair}.crt", f"{pair}.key")
        return post_status(url, context, [])


class DoubleServer:
    """The same users on the API double: its RBAC table denies the verbs a user lacks."""

    def __init__(self, sb: RunningSandbox):
        self.sb = sb
        self.tokens: dict[tuple[str, str], str] = {}
        for sub in SUBRESOURCES:
            for label, verbs in RIGHTS.items():
                deny = [f"{v} pods/{sub}" for v in ("get", "create") if v not in verbs]
                path = sb.add_user(f"{sub}-{label.replace('+', '-')}", deny)
                self.tokens[(sub, label)] = yaml.safe_load(path.read_text())["users"][0]["user"]["token"]
        config = json.loads(sb.kubectl("config", "view", "--raw", "-o", "json").stdout)
        self.server = config["clusters"][0]["cluster"]["server"]
        self.ca = sb.state / "pki" / "ca.crt"

    def status(self, sub: str, label: str, transport: str) -> int:
        header = [f"Authorization: Bearer {self.tokens[(sub, label)]}"]
        url = f"{self.server}/api/v1/namespaces/default/pods/nopod/{sub}?{QUERY[sub]}"
        if transport == "websocket":
            return websocket_status(url, {"ca_certs": str(self.ca)}, header)
        return post_status(url, ssl.create_default_context(cafile=str(self.ca)), header)


def _collection(obj: dict) -> str:
    plural = {"Role": "roles", "RoleBinding": "rolebindings"}[obj["kind"]]
    return f"/apis/rbac.authorization.k8s.io/v1/namespaces/{obj['metadata']['namespace']}/{plural}"


@pytest.fixture(scope="module")
def real_servers(control_planes):
    """The real API server with the gate at its default (on) and off (as 1.34)."""
    return {True: RealServer(control_planes()),
            False: RealServer(control_planes(feature_gates={
                "AuthorizePodWebsocketUpgradeCreatePermission": False}))}


@pytest.fixture(scope="module")
def double(tmp_path_factory):
    with RunningSandbox(tmp_path_factory.mktemp("double") / "state") as sb:
        yield DoubleServer(sb)


CASES = [(sub, label, transport) for sub in SUBRESOURCES for label in RIGHTS
         for transport in ("websocket", "post")]
IDS = [f"{s}-{l}-{t}" for s, l, t in CASES]


@pytest.mark.parametrize("sub,label,transport", CASES, ids=IDS)
@pytest.mark.parametrize("gate", [True, False], ids=["1.35+", "1.34"])
def test_real_api_server_follows_the_rule(real_servers, sub, label, transport, gate):
    expected = "allowed" if allowed(RIGHTS[label], transport, gate) else "forbidden"
    assert outcome(real_servers[gate].status(sub, label, transport)) == expected


@pytest.mark.parametrize("sub,label,transport", CASES, ids=IDS)
@pytest.mark.parametrize("gate", [True, False], ids=["1.37", "1.34"])
def test_api_double_follows_the_rule(double, sub, label, transport, gate):
    (double.sb.state / "kube-version").write_text("1.37" if gate else "1.34")
    expected = "allowed" if allowed(RIGHTS[label], transport, gate) else "forbidden"
    assert outcome(double.status(sub, label, transport)) == expected


def test_kubectl_reaches_the_real_api_server(real_servers):
    cp = real_servers[True].cp
    out = subprocess.run(
        [kubectl_binary(), "--kubeconfig", str(cp.kubeconfig), "get", "--raw", "/version"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["gitVersion"].startswith("v1.37.")
