"""Kubeconfig loading and merging (no cluster needed)."""

from __future__ import annotations

import base64
import json
import ssl
import stat
import sys

import pytest
import yaml

from kubectl_mesh.errors import BadInputError, ExitCode, ForbiddenError, NotFoundError
from kube_sandbox import self_signed
from kubectl_mesh.kube.kubeconfig import IN_CLUSTER, load_config


def write_config(path, clusters=(), users=(), contexts=(), current=None):
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": n, "cluster": c} for n, c in clusters],
           "users": [{"name": n, "user": u} for n, u in users],
           "contexts": [{"name": n, "context": c} for n, c in contexts]}
    if current is not None:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def two_files(tmp_path):
    a = write_config(tmp_path / "a.yaml",
                     clusters=[("shared", {"server": "https://a.example:6443"})],
                     users=[("shared-user", {"token": "token-from-a"})],
                     contexts=[("ctx-a", {"cluster": "shared", "user": "shared-user",
                                          "namespace": "ns-a"}),
                               ("both", {"cluster": "shared", "user": "shared-user"})])
    b = write_config(tmp_path / "b.yaml",
                     clusters=[("shared", {"server": "https://b.example:6443"}),
                               ("only-b", {"server": "https://onlyb.example"})],
                     users=[("shared-user", {"token": "token-from-b"}),
                            ("b-user", {"token": "token-b-user"})],
                     contexts=[("ctx-b", {"cluster": "only-b", "user": "b-user"}),
                               ("both", {"cluster": "only-b", "user": "b-user"})],
                     current="ctx-b")
    return a, b


def env_with(**kw):
    return {"HOME": "/nonexistent-home", **kw}


def test_kubeconfig_list_first_file_wins_each_key(two_files):
    a, b = two_files
    env = env_with(KUBECONFIG=f"{a}:{b}")
    # a sets no current-context, so b's applies
    cfg = load_config(environ=env)
    assert (cfg.context, cfg.server, cfg.token) == ("ctx-b", "https://onlyb.example", "token-b-user")
    # a's context names the "shared" cluster and user, which b defines too: a's win
    cfg = load_config(context="ctx-a", environ=env)
    assert (cfg.server, cfg.token, cfg.namespace) == ("https://a.example:6443", "token-from-a", "ns-a")
    # a context name defined in both: a's definition wins
    cfg = load_config(context="both", environ=env)
    assert cfg.server == "https://a.example:6443"
    assert cfg.kubeconfig_paths == (str(a), str(b)) and not cfg.explicit_kubeconfig


def test_kubeconfig_list_order_matters(two_files):
    a, b = two_files
    cfg = load_config(context="both", environ=env_with(KUBECONFIG=f"{b}:{a}"))
    assert cfg.server == "https://onlyb.example"


def test_missing_files_in_list_are_skipped(two_files, tmp_path):
    a, b = two_files
    cfg = load_config(environ=env_with(KUBECONFIG=f"{tmp_path}/missing.yaml::{b}"))
    assert cfg.context == "ctx-b"


def test_current_context_from_first_file_that_sets_it(two_files, tmp_path):
    a, b = two_files
    c = write_config(tmp_path / "c.yaml", current="ctx-a")
    cfg = load_config(environ=env_with(KUBECONFIG=f"{a}:{c}:{b}"))
    assert cfg.context == "ctx-a"


def test_namespace_precedence(two_files):
    a, b = two_files
    env = env_with(KUBECONFIG=f"{a}:{b}")
    assert load_config(context="ctx-a", environ=env).namespace == "ns-a"
    assert load_config(context="ctx-a", namespace="flag", environ=env).namespace == "flag"
    assert load_config(context="ctx-b", environ=env).namespace == "default"


def test_explicit_kubeconfig_ignores_env_list(two_files):
    a, b = two_files
    cfg = load_config(kubeconfig=str(a), context="both", environ=env_with(KUBECONFIG=str(b)))
    assert cfg.server == "https://a.example:6443" and cfg.explicit_kubeconfig


def test_missing_context_lists_available(two_files):
    a, b = two_files
    with pytest.raises(NotFoundError) as exc:
        load_config(context="nope", environ=env_with(KUBECONFIG=f"{a}:{b}"))
    assert exc.value.exit_code == ExitCode.NOT_FOUND
    assert 'context "nope" not found' in str(exc.value)
    assert "available contexts: both, ctx-a, ctx-b" in str(exc.value)


def test_no_current_context(tmp_path):
    a = write_config(tmp_path / "a.yaml", clusters=[("c", {"server": "https://x"})],
                     contexts=[("only", {"cluster": "c"})])
    with pytest.raises(NotFoundError, match="has no current-context.*pass --context; available: only"):
        load_config(kubeconfig=str(a), environ=env_with())


def test_explicit_file_not_found(tmp_path):
    with pytest.raises(NotFoundError, match=f"kubeconfig file {tmp_path}/nope not found"):
        load_config(kubeconfig=str(tmp_path / "nope"), environ=env_with())


def test_no_kubeconfig_at_all(tmp_path):
    with pytest.raises(NotFoundError, match="no kubeconfig found.*--kubeconfig"):
        load_config(environ=env_with(), service_account_dir=str(tmp_path))
    with pytest.raises(NotFoundError, match="none of the files in KUBECONFIG exist"):
        load_config(environ=env_with(KUBECONFIG=f"{tmp_path}/x:{tmp_path}/y"),
                    service_account_dir=str(tmp_path))


def test_home_kube_config_is_the_default(tmp_path):
    (tmp_path / ".kube").mkdir()
    write_config(tmp_path / ".kube" / "config", clusters=[("c", {"server": "https://home/"})],
                 contexts=[("h", {"cluster": "c"})], current="h")
    cfg = load_config(environ={"HOME": str(tmp_path)})
    assert (cfg.context, cfg.server, cfg.token) == ("h", "https://home", None)


def test_not_yaml_is_bad_input(tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("clusters: [unclosed")
    with pytest.raises(BadInputError) as exc:
        load_config(kubeconfig=str(bad), environ=env_with())
    assert exc.value.exit_code == ExitCode.BAD_INPUT


def test_context_with_unknown_cluster(tmp_path):
    a = write_config(tmp_path / "a.yaml", contexts=[("x", {"cluster": "ghost"})], current="x")
    with pytest.raises(BadInputError, match='refers to cluster "ghost"'):
        load_config(kubeconfig=str(a), environ=env_with())


def test_relative_paths_resolve_against_their_file(tmp_path, monkeypatch):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "token.txt").write_text("tok-from-file\n")
    ca_pem, _, _ = self_signed("ca.example")
    (sub / "ca.pem").write_bytes(ca_pem)
    cfgfile = write_config(sub / "config", clusters=[("c", {"server": "https://x",
                                                             "certificate-authority": "ca.pem"})],
                           users=[("u", {"tokenFile": "token.txt"})],
                           contexts=[("x", {"cluster": "c", "user": "u"})], current="x")
    monkeypatch.chdir(tmp_path)  # relative to the file, not the working directory
    cfg = load_config(environ=env_with(KUBECONFIG=str(cfgfile)))
    assert cfg.token == "tok-from-file"
    assert cfg.ca_pem == ca_pem
    assert "tok-from-file" not in repr(cfg)  # secrets stay out of tracebacks and logs


def test_cert_and_key_data_build_an_ssl_context(tmp_path):
    cert, key, ca = self_signed("client")
    a = write_config(tmp_path / "a", clusters=[("c", {
        "server": "https://x", "certificate-authority-data": base64.b64encode(ca).decode()})],
        users=[("u", {"client-certificate-data": base64.b64encode(cert).decode(),
                      "client-key-data": base64.b64encode(key).decode()})],
        contexts=[("x", {"cluster": "c", "user": "u"})], current="x")
    cfg = load_config(kubeconfig=str(a), environ=env_with())
    assert cfg.client_cert_pem == cert and cfg.client_key_pem == key
    ctx = cfg.ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1  # only the cluster's CA, not the system bundle


def test_insecure_skip_tls_verify(tmp_path):
    a = write_config(tmp_path / "a", clusters=[("c", {"server": "https://x",
                                                       "insecure-skip-tls-verify": True})],
                     contexts=[("x", {"cluster": "c"})], current="x")
    ctx = load_config(kubeconfig=str(a), environ=env_with()).ssl_context()
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname


def test_exec_plugin_credentials(tmp_path):
    plugin = tmp_path / "bin" / "cred-plugin"
    plugin.parent.mkdir()
    plugin.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps({{"
                      "'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',"
                      "'status': {'token': 'exec-token-123'}}))\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    a = write_config(tmp_path / "config", clusters=[("c", {"server": "https://x"})],
                     users=[("u", {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                            "command": "bin/cred-plugin",  # relative to the file
                                            "interactiveMode": "Never"}})],
                     contexts=[("x", {"cluster": "c", "user": "u"})], current="x")
    cfg = load_config(kubeconfig=str(a), environ=env_with())
    assert cfg.token == "exec-token-123"


def _plugin(tmp_path, body: str):
    plugin = tmp_path / "plugin"
    plugin.write_text(f"#!{sys.executable}\nimport json, os, sys\n{body}\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    return str(plugin)


def test_exec_plugin_gets_env_args_and_exec_info_and_may_return_a_client_cert(tmp_path):
    """The ExecCredential protocol is spoken without the kubernetes client (whose pydantic
    dependency the krew zipapp cannot carry): env, args, KUBERNETES_EXEC_INFO, cert output."""
    from kubectl_mesh.kube.credplugin import exec_credentials
    plugin = _plugin(tmp_path, "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
                               "assert info['spec']['cluster']['server'] == 'https://x', info\n"
                               "assert os.environ['REGION'] == 'eu' and sys.argv[1:] == ['token']\n"
                               "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',"
                               " 'status': {'clientCertificateData': 'CERT',"
                               " 'clientKeyData': 'KEY'}}))")
    creds = exec_credentials({"command": plugin, "args": ["token"], "provideClusterInfo": True,
                              "env": [{"name": "REGION", "value": "eu"}]}, "user 'u'",
                             {"server": "https://x"}, environ=env_with())
    assert creds == {"client_cert_pem": b"CERT", "client_key_pem": b"KEY"}


@pytest.mark.parametrize("body, error, words", [
    ("sys.exit('no session: run aws sso login')", ForbiddenError, "exited 1: no session"),
    ("print('not json')", BadInputError, "did not print an ExecCredential"),
    ("print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'status': {}}))",
     ForbiddenError, "neither a token nor a client"),
], ids=["fails", "not-json", "empty"])
def test_exec_plugin_failures_are_one_clear_line(tmp_path, body, error, words):
    from kubectl_mesh.kube.credplugin import exec_credentials
    with pytest.raises(error) as info:
        exec_credentials({"command": _plugin(tmp_path, body),
                          "installHint": "install the aws CLI"}, "user 'u'", environ=env_with())
    assert words in info.value.message and "\n" not in info.value.message


def test_missing_exec_plugin_is_a_missing_tool_with_the_install_hint(tmp_path):
    from kubectl_mesh.errors import ToolMissingError
    from kubectl_mesh.kube.credplugin import exec_credentials
    with pytest.raises(ToolMissingError) as info:
        exec_credentials({"command": "no-such-credential-plugin",
                          "installHint": "install gke-gcloud-auth-plugin"}, "user 'u'",
                         environ=env_with())
    assert info.value.hint == "install gke-gcloud-auth-plugin"


def test_in_cluster(tmp_path):
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "namespace").write_text("mesh-tools")
    cfg = load_config(environ=env_with(KUBERNETES_SERVICE_HOST="10.0.0.1",
                                       KUBERNETES_SERVICE_PORT="443"),
                      service_account_dir=str(tmp_path))
    assert (cfg.context, cfg.server, cfg.token, cfg.namespace) == (
        IN_CLUSTER, "https://10.0.0.1:443", "sa-token", "mesh-tools")
    cfg = load_config(namespace="x", environ=env_with(KUBERNETES_SERVICE_HOST="fd00::1"),
                      service_account_dir=str(tmp_path))
    assert (cfg.server, cfg.namespace) == ("https://[fd00::1]:443", "x")


def test_json_kubeconfig_is_accepted(tmp_path):
    # kubeconfigs written as JSON are YAML too
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"clusters": [{"name": "c", "cluster": {"server": "https://j"}}],
                                "contexts": [{"name": "j", "context": {"cluster": "c"}}],
                                "current-context": "j"}))
    assert load_config(kubeconfig=str(path), environ=env_with()).server == "https://j"


KUBECTL_WRITTEN = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJU+/Zz==
    server: https://127.0.0.1:6443
  name: kind-kind
contexts:
- context:
    cluster: kind-kind
    namespace: shop
    user: kind-kind
  name: kind-kind
current-context: kind-kind
kind: Config
preferences: {}
users:
- name: kind-kind
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      args: ["--region", eu-west-1]
      command: aws
      env: null
      interactiveMode: Never
      provideClusterInfo: false
    token: abc.def-ghi=
"""


@pytest.mark.parametrize("text,pyyaml", [
    (KUBECTL_WRITTEN, False),
    (KUBECTL_WRITTEN + "# a comment\n", False),
    (KUBECTL_WRITTEN.replace("preferences: {}", "preferences: {colors: 0123}"),
     True),  # an octal int
    (KUBECTL_WRITTEN.replace("preferences: {}", "preferences: {since: 2024-01-01}"),
     True),  # a date
    ("---\n" + KUBECTL_WRITTEN, True),
    # tokens and names that start with a digit yet are strings (a static token, a hex id)
    (KUBECTL_WRITTEN.replace("token: abc.def-ghi=", "token: 93aa792047a095e7"), False),
    (KUBECTL_WRITTEN.replace("kind-kind", "1kind-kind"), False),
    # a hex int, a float, a sexagesimal int: PyYAML's
    (KUBECTL_WRITTEN.replace("preferences: {}", "preferences: {colors: 0x1f}"), True),
    (KUBECTL_WRITTEN.replace("preferences: {}", "preferences: {colors: 1_000.5}"), True),
    (KUBECTL_WRITTEN.replace("preferences: {}", "preferences: {colors: 1:20}"), True),
], ids=["kubectl", "comment", "number", "timestamp", "document-start", "digit-token",
        "digit-name", "hex", "float", "sexagesimal"])
def test_kubeconfig_reads_as_pyyaml_does_and_kubectls_without_importing_it(tmp_path, text,
                                                                          pyyaml):
    """What `kubectl config` writes is read without PyYAML (start-up time of every command);
    anything else goes to PyYAML, and either way the result is yaml.safe_load's."""
    import subprocess
    import sys

    import yaml

    path = tmp_path / "config"
    path.write_text(text)
    script = ("import json, sys; from kubectl_mesh.kube.kubeconfig import read_kubeconfig; "
              f"data = read_kubeconfig({str(path)!r}); "
              "print(json.dumps([repr(data), 'yaml' in sys.modules]))")
    import json
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    data, imported = json.loads(out)
    assert data == repr(yaml.safe_load(text))
    assert imported is pyyaml


@pytest.mark.parametrize("memfd", [True, False], ids=["in-memory", "temporary-directory"])
def test_the_client_key_pair_is_loaded_and_nothing_is_left(tmp_path, monkeypatch, memfd):
    """The key pair reaches ssl through in-memory files where the system has them (no
    tempfile import, nothing on disk), else a temporary directory; a key that does not match
    its certificate is one line naming the user; no file or descriptor is left either way."""
    import os
    import subprocess
    import tempfile

    from kubectl_mesh.kube import kubeconfig as kubeconfig_module
    if not memfd:
        monkeypatch.delattr(kubeconfig_module.os, "memfd_create", raising=False)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    cert, key, _ = self_signed("client")
    _, other_key, _ = self_signed("other")
    fds = set(os.listdir("/proc/self/fd"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    kubeconfig_module._load_cert_chain(ctx, cert, key, "alice")
    with pytest.raises(BadInputError, match="client certificate/key of user 'alice' cannot"):
        kubeconfig_module._load_cert_chain(ctx, cert, other_key, "alice")
    assert set(os.listdir("/proc/self/fd")) == fds
    assert not list((tmp_path / "tmp").iterdir())
    if memfd:
        script = ("import sys, ssl; from kubectl_mesh.kube.kubeconfig import _load_cert_chain; "
                  f"_load_cert_chain(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), {cert!r}, "
                  f"{key!r}, 'alice'); print('tempfile' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True, timeout=60).stdout.strip()
        assert out == "False"
