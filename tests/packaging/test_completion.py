"""Shell completion: flags, values, targets, the kubeconfig context and the lean API GET."""

from __future__ import annotations

import base64
import datetime
import http.server
import io
import ipaddress
import json
import os
import ssl
import subprocess
import threading
import time

import pytest
import yaml

from kubectl_mesh.cli import COMMANDS, find_command
from kubectl_mesh.cli import completion
from kubectl_mesh.errors import NotFoundError

# Not `from conftest import VENV_BIN`: with several test directories collected at once,
# `conftest` may name another directory's conftest module.
VENV_BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), ".venv", "bin")

ROUTES = find_command("routes")


class FakeCluster:
    """A lister_factory double: records (collection, namespace) and serves fixed names."""

    NAMES = {
        "api/v1/pods": ["productpage-v1-abc", "reviews-v1-xyz", "reviews-v2-qrs"],
        "apis/apps/v1/deployments": ["productpage-v1", "reviews-v1"],
        "api/v1/namespaces": ["bookinfo", "default", "istio-system"],
    }

    def __init__(self):
        self.calls = []
        self.factory_args = []

    def __call__(self, kubeconfig, context, env):
        self.factory_args.append((kubeconfig, context))

        def lister(collection, namespace):
            self.calls.append((collection, namespace))
            return self.NAMES.get(collection, [])

        return lister, "ctx-ns"


def complete(args, cluster=None):
    return completion.complete_command(ROUTES, args, lister_factory=cluster or FakeCluster())


@pytest.mark.parametrize("args,expected", [
    (["--ku"], ["--kubeconfig"]),
    (["--nam"], ["--name", "--namespace"]),
    (["-o", ""], ["short", "wide", "json", "yaml"]),
    (["--output", "y"], ["yaml"]),
    (["--output=j"], ["--output=json"]),
    (["pod-x", "--re"], ["--request-timeout"]),
    (["pod-x", ""], []),  # one TARGET only
    (["--debug", "-o", "json", "pod-x", ""], []),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_flags_and_choices(args, expected):
    assert complete(args) == (expected, 4)


def test_flag_list_comes_from_the_parser():
    names, directive = complete(["-"])
    assert directive == 4
    assert {"-n", "--namespace", "--context", "--kubeconfig", "-o", "--output", "--trace",
            "--request-timeout", "--proxy-admin-port", "--debug", "-h"} <= set(names)


def test_kubeconfig_value_falls_back_to_file_completion():
    assert complete(["--kubeconfig", ""]) == ([], 0)


def test_target_uses_context_namespace_then_typed_namespace():
    cluster = FakeCluster()
    assert complete(["rev"], cluster) == (["reviews-v1-xyz", "reviews-v2-qrs"], 4)
    assert cluster.calls == [("api/v1/pods", "ctx-ns")]

    cluster = FakeCluster()
    assert complete(["--context", "prod", "--kubeconfig=/k", "-nbookinfo", "deploy/pr"], cluster) == (
        ["deploy/productpage-v1"], 4)
    assert cluster.calls == [("apis/apps/v1/deployments", "bookinfo")]
    assert cluster.factory_args == [("/k", "prod")]

    cluster = FakeCluster()
    complete(["--namespace=other", "pod/"], cluster)
    assert cluster.calls == [("api/v1/pods", "other")]
    assert complete(["nosuchkind/x"], FakeCluster()) == ([], 4)


def test_namespace_values_come_from_the_cluster():
    cluster = FakeCluster()
    assert complete(["-n", "b"], cluster) == (["bookinfo"], 4)
    assert cluster.calls == [("api/v1/namespaces", None)]


def test_cluster_errors_are_quiet():
    def broken(*_):
        raise OSError("connection refused")

    assert complete([""], broken) == ([], 4)
    out = io.StringIO()
    assert completion.print_completion([], 4, out) == 0 and out.getvalue() == ":4\n"


def test_command_names():
    installed = [c.name for c in COMMANDS if c.is_installed()]
    assert completion.complete_mesh_words([""]) == (installed + ["version", "help"], 4)
    assert completion.complete_mesh_words(["ver"]) == (["version"], 4)
    assert completion.complete_mesh_words(["help", "ro"]) == (["routes", "rootca-compare"], 4)
    # `kubectl mesh routes --ku` through the dispatcher's completion.
    assert completion.complete_mesh_words(["routes", "--ku"]) == (["--kubeconfig"], 4)


# ---- kubeconfig reader -----------------------------------------------------------------------


def write_yaml(path, doc):
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.fixture
def two_kubeconfigs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "token").write_text("file-token\n")
    first = write_yaml(tmp_path / "a" / "config", {
        "current-context": "dev",
        "clusters": [{"name": "dev-cluster", "cluster": {
            "server": "https://dev:6443", "certificate-authority": "ca.crt"}}],
        "users": [{"name": "dev-user", "user": {"token": "dev-token"}}],
        "contexts": [{"name": "dev", "context": {"cluster": "dev-cluster", "user": "dev-user",
                                                 "namespace": "team-a"}},
                     {"name": "shared", "context": {"cluster": "dev-cluster", "user": "dev-user"}}],
    })
    second = write_yaml(tmp_path / "b" / "config", {
        "current-context": "prod",  # loses: the first file already set one
        "clusters": [{"name": "prod-cluster", "cluster": {
            "server": "https://prod:443", "insecure-skip-tls-verify": True,
            "tls-server-name": "api.prod"}},
            {"name": "dev-cluster", "cluster": {"server": "https://ignored"}}],
        "users": [{"name": "prod-user", "user": {
            "tokenFile": "token", "client-certificate-data": base64.b64encode(b"CERT").decode(),
            "client-key": "/abs/key.pem"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod-cluster", "user": "prod-user"}},
                     {"name": "shared", "context": {"cluster": "prod-cluster", "user": "x"}}],
    })
    return tmp_path, first, second


def test_cluster_lister_resolves_the_kubeconfig_list_like_the_commands(two_kubeconfigs):
    """The completer resolves contexts with kube.kubeconfig.load_config, the commands' reader."""
    tmp, first, second = two_kubeconfigs
    (tmp / "a" / "ca.crt").write_text("not used before a request\n")
    env = {"KUBECONFIG": os.pathsep.join([first, str(tmp / "missing"), second])}
    _, namespace = completion.cluster_lister(None, None, env)
    assert namespace == "team-a"  # current-context from the first file that sets it
    _, namespace = completion.cluster_lister(None, "shared", env)
    assert namespace == "default"  # the first file's "shared" wins; it sets no namespace
    with pytest.raises(NotFoundError, match="/abs/key.pem"):  # the commands' reader's checks
        completion.cluster_lister(None, "prod", env)
    with pytest.raises(NotFoundError, match='context "nope" not found'):
        completion.cluster_lister(None, "nope", env)


def test_kubeconfig_flag_expands_the_home_directory(two_kubeconfigs, monkeypatch):
    tmp, first, _ = two_kubeconfigs
    monkeypatch.setenv("HOME", str(tmp))
    assert completion.context_names("~/a/config", {}) == ["dev", "shared"]


def test_context_values_come_from_the_kubeconfig_list(two_kubeconfigs):
    _, first, second = two_kubeconfigs
    env = {"KUBECONFIG": os.pathsep.join([first, second])}
    assert completion.complete_command(ROUTES, ["--context", ""], env=env) == (
        ["dev", "prod", "shared"], 4)
    assert completion.complete_command(ROUTES, ["--kubeconfig", second, "--context", "s"],
                                       env=env) == (["shared"], 4)


# ---- the real GET, against a local HTTPS server -------------------------------------------------


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-apiserver")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "server.crt").write_bytes(cert_pem)
    (tmp_path / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_pem


@pytest.fixture
def apiserver(tmp_path):
    """An HTTPS server answering pod lists for namespace `bookinfo`, with a bearer token."""
    cert_pem = _self_signed(tmp_path)
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            if self.headers.get("Authorization") != "Bearer s3cret":
                self.send_response(401)
                self.end_headers()
                return
            names = {"/api/v1/namespaces/bookinfo/pods?limit=500": ["details-v1-1", "ratings-v1-2"]}
            if self.path not in names:
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps({"kind": "PodList", "items": [
                {"metadata": {"name": n}} for n in names[self.path]]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert_pem, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _kubeconfig(tmp_path, server, ca_pem, token="s3cret"):
    return write_yaml(tmp_path / "kubeconfig", {
        "current-context": "sandbox",
        "clusters": [{"name": "sandbox", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "sandbox", "context": {
            "cluster": "sandbox", "user": "admin", "namespace": "bookinfo"}}],
    })


def _run_completer(args, kubeconfig):
    env = dict(os.environ, KUBECONFIG=kubeconfig)
    started = time.monotonic()
    result = subprocess.run([os.path.join(VENV_BIN, "kubectl_complete-mesh-routes"), *args],
                            capture_output=True, text=True, env=env, timeout=15, cwd="/")
    return result, time.monotonic() - started


def test_targets_from_a_real_https_server(tmp_path, apiserver):
    server, ca_pem, seen = apiserver
    result, _ = _run_completer(["-n", "bookinfo", ""], _kubeconfig(tmp_path, server, ca_pem))
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "details-v1-1\nratings-v1-2\n:4\n", "")
    assert seen == [("/api/v1/namespaces/bookinfo/pods?limit=500", "Bearer s3cret")]


def test_wrong_token_or_wrong_ca_prints_only_the_directive(tmp_path, apiserver):
    server, ca_pem, seen = apiserver
    result, _ = _run_completer([""], _kubeconfig(tmp_path, server, ca_pem, token="wrong"))
    assert (result.stdout, result.stderr) == (":4\n", "")
    other_ca = _self_signed(tmp_path / "other" if (tmp_path / "other").mkdir() is None else tmp_path)
    result, _ = _run_completer([""], _kubeconfig(tmp_path, server, other_ca))
    assert (result.stdout, result.stderr) == (":4\n", "")
    assert len(seen) == 1  # the bad CA never got as far as a request


def test_unreachable_server_is_quiet_and_quick(tmp_path):
    result, elapsed = _run_completer([""], _kubeconfig(tmp_path, "https://127.0.0.1:9", b""))
    assert (result.returncode, result.stdout, result.stderr) == (0, ":4\n", "")
    assert elapsed < 3


def test_dashboard_targets_include_istiods_pages_and_admin_completes_envoy_paths():
    dashboard, admin = find_command("dashboard"), find_command("admin")
    assert completion.complete_command(dashboard, ["istiod"], lister_factory=FakeCluster()) == (
        ["istiod", "istiod-debug"], 4)
    assert completion.complete_command(dashboard, ["rev"], lister_factory=FakeCluster()) == (
        ["reviews-v1-xyz", "reviews-v2-qrs"], 4)
    assert completion.complete_command(admin, ["reviews-v1-xyz", "/health"],
                                       lister_factory=FakeCluster()) == (
        ["/healthcheck/fail", "/healthcheck/ok"], 4)
    assert completion.complete_command(admin, ["-n", "x", "pod/a", "/config"],
                                       lister_factory=FakeCluster()) == (["/config_dump"], 4)
