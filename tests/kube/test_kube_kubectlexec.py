"""The exec/attach fallback's kubectl subprocess (kube/kubectlexec.py) against a stand-in
`kubectl` script: output passed through, the command's exit code read from kubectl's
'command terminated with exit code N', kubectl's own failures raised as the WebSocket's."""

from __future__ import annotations

import stat

import pytest

from kubectl_mesh.errors import ForbiddenError, NotFoundError
from kubectl_mesh.kube.execstream import ExecFailed
from kubectl_mesh.kube.kubeconfig import ApiConfig
from kubectl_mesh.kube.kubectlexec import KubectlStream

CONFIG = ApiConfig(server="https://10.0.0.1:6443", context="x", namespace="default",
                   cluster="c", kubeconfig_paths=("/tmp/kc",), as_user="alice")


def fake_kubectl(tmp_path, script: str) -> str:
    path = tmp_path / "kubectl"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def run(tmp_path, script: str, sub: str = "exec"):
    stream = KubectlStream.start(CONFIG, "shop", "web-1", sub, ["tcpdump", "-i", "any"], "web",
                                 5.0, "exec in pod web-1.shop", kubectl=fake_kubectl(
                                     tmp_path, script), also="the WebSocket path was refused")
    out, err = bytearray(), bytearray()
    try:
        return stream.run(out.extend, err.extend), bytes(out), bytes(err)
    finally:
        stream.close()


def test_the_argv_reaches_the_same_cluster_as_the_same_user(tmp_path):
    status, out, _ = run(tmp_path, 'printf "%s\\n" "$@"\n')
    assert status.code == 0
    assert out.decode().splitlines() == [
        "--kubeconfig", "/tmp/kc", "--context", "x", "--as=alice", "--request-timeout=5.0s",
        "exec", "-i", "web-1", "-n", "shop", "-c", "web", "--", "tcpdump", "-i", "any"]


def test_the_commands_exit_code_and_stderr_come_through(tmp_path):
    status, out, err = run(tmp_path, "echo data; echo '3 packets captured' >&2; "
                                     "echo 'command terminated with exit code 3' >&2; exit 3\n")
    assert (status.code, out, err) == (3, b"data\n", b"3 packets captured\n")


@pytest.mark.parametrize("said, error", [
    ('Error from server (Forbidden): pods "web-1" is forbidden: User "alice" cannot create '
     'resource "pods/exec" in API group "" in the namespace "shop"', ForbiddenError),
    ('Error from server (NotFound): pods "web-1" not found', NotFoundError),
    ('error: Internal error occurred: error executing command in container: exec: "tcpdump": '
     'executable file not found in $PATH', ExecFailed),
], ids=["forbidden", "not-found", "exec-failed"])
def test_kubectls_own_failures_raise_as_the_websockets_would(tmp_path, said, error):
    with pytest.raises(error) as e:
        run(tmp_path, f"echo '{said}' >&2; exit 1\n")
    if error is ForbiddenError:
        assert e.value.message == "cannot create pods/exec in namespace shop: ask for RBAC verb " \
                                  "create on pods/exec"
        assert e.value.hint == 'as user "alice"; the WebSocket path was refused'


def test_an_attach_is_waited_for_until_kubectl_says_it_upgraded(tmp_path):
    attached = ('echo \'I1206 12:00:00.000000 1 round_trippers.go:632] "Response" verb="POST" '
                'status="101 Switching Protocols"\' >&2; cat >/dev/null\n')
    stream = KubectlStream.start(CONFIG, "shop", "web-1", "attach", (), "dbg", 5.0, "attach",
                                 kubectl=fake_kubectl(tmp_path, attached))
    try:
        stream.wait_attached(5.0)
        stream.close_stdin()
        assert stream.run(lambda _: None, lambda _: None).code == 0
    finally:
        stream.close()
    refused = KubectlStream.start(CONFIG, "shop", "web-1", "attach", (), "dbg", 5.0, "attach",
                                  kubectl=fake_kubectl(tmp_path, 'echo \'Error from server '
                                                       '(Forbidden): pods "web-1" is forbidden: '
                                                       'User "alice" cannot create resource '
                                                       '"pods/attach" in API group "" in the '
                                                       'namespace "shop"\' >&2; exit 1\n'))
    with pytest.raises(ForbiddenError):
        refused.wait_attached(5.0)
