"""Node mode's PID lookup: container ID parsing and the /proc scanning script, run by real sh
against fake /proc trees of each runtime's cgroup layout and against the real /proc."""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import subprocess

import pytest

from kubectl_mesh.capture.nodepid import (
    ContainerId,
    parse_pids,
    running_container_id,
    script_argv,
)
from kubectl_mesh.errors import BadInputError, ExitCode, UnreachableError

ID = "4f1c" + "a" * 60
OTHER = "4f1c" + "b" * 60
UID = "0b7c1a52_3d2e_4a55_9b4e_1f0c2d3e4a5b"


@pytest.mark.parametrize("raw,runtime,hexid", [
    (f"containerd://{ID}", "containerd", ID),
    (f"cri-o://{ID}", "cri-o", ID),
    (f"docker://{ID}", "docker", ID),
    (ID, "", ID),
    ("docker://0123456789ab", "docker", "0123456789ab"),
], ids=["containerd", "cri-o", "docker", "bare", "short-12"])
def test_container_id_parses_runtime_and_hex(raw, runtime, hexid):
    cid = ContainerId.parse(raw)
    assert (cid.runtime, cid.hex) == (runtime, hexid)
    assert str(cid) == raw


@pytest.mark.parametrize("raw", [
    "", "containerd://", "sandbox://1234", "containerd://" + ID.upper(),
    f"containerd://{ID}; touch /tmp/x", "containerd://$(reboot)", f"containerd:// {ID}",
    "containerd://" + "a" * 129, "containerd://0123456789a", f"containerd://{ID}\n",
    f"://{ID}",
], ids=["empty", "no-id", "sandbox-pid", "uppercase", "semicolon", "subshell", "space",
        "too-long", "too-short", "newline", "empty-runtime"])
def test_container_id_rejects_anything_but_hex(raw):
    with pytest.raises(ValueError):
        ContainerId.parse(raw)


def test_script_argv_passes_the_id_as_a_positional_parameter():
    argv = script_argv(ContainerId.parse(f"containerd://{ID}"))
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["sh", ID]
    assert ID not in argv[2]  # the script text is fixed


def _pod(state: dict, cid: str = f"containerd://{ID}") -> dict:
    return {"metadata": {"name": "web-1", "namespace": "shop"},
            "status": {"containerStatuses": [
                {"name": "istio-proxy", "state": state, "containerID": cid}]}}


def test_running_container_id_of_a_running_container():
    assert running_container_id(_pod({"running": {}}), "istio-proxy").hex == ID


def test_running_container_id_of_a_native_sidecar():
    """istio-proxy as a restartable init container reports in initContainerStatuses."""
    pod = {"metadata": {"name": "web-1", "namespace": "shop"},
           "status": {"containerStatuses": [{"name": "web", "state": {"running": {}},
                                             "containerID": "containerd://" + "b" * 64}],
                      "initContainerStatuses": [{"name": "istio-proxy", "state": {"running": {}},
                                                 "containerID": f"containerd://{ID}"}]}}
    assert running_container_id(pod, "istio-proxy").hex == ID


@pytest.mark.parametrize("pod,said", [
    (_pod({"waiting": {"reason": "ContainerCreating"}}, ""),
     "is not running (waiting: ContainerCreating, no containerID yet)"),
    (_pod({"terminated": {"reason": "Error"}}), "is not running (terminated: Error)"),
    ({"metadata": {"name": "web-1", "namespace": "shop"}, "status": {}},
     "is not running (not started, no containerID yet)"),
], ids=["creating", "terminated", "no-status"])
def test_running_container_id_says_why_there_is_no_process(pod, said):
    with pytest.raises(UnreachableError) as e:
        running_container_id(pod, "istio-proxy")
    assert said in e.value.message and "istio-proxy of pod web-1.shop" in e.value.message
    assert e.value.exit_code == ExitCode.UNREACHABLE


def test_running_container_id_refuses_an_id_that_is_not_hex():
    with pytest.raises(BadInputError) as e:
        running_container_id(_pod({"running": {}}, "sandbox://1234"), "istio-proxy")
    assert "'sandbox://1234'" in e.value.message and e.value.hint == "use --mode ephemeral"


# -- the script, run by real sh ----------------------------------------------------------
@pytest.fixture(params=["host", "busybox"])
def shell_path(request, tmp_path_factory) -> str | None:
    """PATH for the script's sh and grep: the host's, or busybox's (what Alpine-based debug
    images such as netshoot ship)."""
    if request.param == "host":
        return None
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("busybox is not installed: run scripts/system_tools.sh")
    bin_dir = tmp_path_factory.mktemp("busybox")
    for applet in ("sh", "grep"):
        (bin_dir / applet).symlink_to(busybox)
    return str(bin_dir)


def run_script(hexid: str, proc: pathlib.Path | str = "/proc",
               path: str | None = None) -> subprocess.CompletedProcess:
    script = script_argv(ContainerId(runtime="", hex="0" * 12))[2]
    env = dict(os.environ, PATH=path) if path else None
    sh = shutil.which("sh", path=path)
    return subprocess.run([sh, "-c", script, "sh", hexid, str(proc)], capture_output=True,
                          text=True, timeout=30, env=env, check=False)


def fake_proc(tmp_path: pathlib.Path, cgroups: dict[int, str]) -> pathlib.Path:
    proc = tmp_path / "proc"
    for pid, text in cgroups.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cgroup").write_text(text)
    (proc / "self").mkdir()  # not a PID: never looked at
    (proc / "self" / "cgroup").write_text(f"0::/{ID}\n")
    return proc


SYSTEMD = "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice/{leaf}\n"
LAYOUTS = {
    "containerd-systemd": SYSTEMD.format(uid=UID, leaf=f"cri-containerd-{ID}.scope"),
    "crio-systemd": SYSTEMD.format(uid=UID, leaf=f"crio-{ID}.scope"),
    "docker-systemd": SYSTEMD.format(uid=UID, leaf=f"docker-{ID}.scope"),
    "cgroupfs": f"0::/kubepods/besteffort/pod{UID}/{ID}\n",
    "crio-cgroupfs": f"0::/kubepods/besteffort/pod{UID}/crio-{ID}\n",
    "v1-hybrid": f"12:pids:/kubepods/burstable/pod{UID}/{ID}\n1:name=systemd:/kubepods/"
                 f"burstable/pod{UID}/{ID}\n0::/\n",
    "nested-below-scope": SYSTEMD.format(uid=UID, leaf=f"cri-containerd-{ID}.scope/init"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS), ids=list(LAYOUTS))
def test_script_finds_the_container_in_each_runtimes_layout(tmp_path, shell_path, layout):
    proc = fake_proc(tmp_path, {
        1: "0::/init.scope\n",
        4120: LAYOUTS[layout],
        877: LAYOUTS[layout],  # a second process of the container, lower: the init
        990: LAYOUTS[layout].replace(ID, OTHER),  # another container
    })
    out = run_script(ID, proc, shell_path)
    assert out.returncode == 0, out.stderr
    assert parse_pids(out.stdout) == [877, 4120]


@pytest.mark.parametrize("cgroup", [
    SYSTEMD.format(uid=UID, leaf=f"crio-conmon-{ID}.scope"),  # CRI-O's monitor, host netns
    SYSTEMD.format(uid=UID, leaf=f"cri-containerd-{ID}0.scope"),  # the id is a prefix of it
    f"0::/kubepods/besteffort/pod{UID}/x{ID}\n",
    f"0::/kubepods/besteffort/pod{UID}/{ID[:-1]}\n",  # a prefix of the id
], ids=["crio-conmon", "longer-id", "other-prefix", "shorter-id"])
def test_script_ignores_near_misses(tmp_path, shell_path, cgroup):
    proc = fake_proc(tmp_path, {100: cgroup, 200: LAYOUTS["cgroupfs"]})
    out = run_script(ID, proc, shell_path)
    assert parse_pids(out.stdout) == [200]


def test_script_prints_nothing_when_no_process_has_the_id(tmp_path, shell_path):
    out = run_script(OTHER, fake_proc(tmp_path, {100: LAYOUTS["containerd-systemd"]}),
                     shell_path)
    assert (out.returncode, out.stdout) == (0, "")


@pytest.mark.parametrize("bad", ["", "$(touch {marker})", "a;touch {marker}", "*", ".*",
                                 "AAAAAAAAAAAA"],
                         ids=["empty", "subshell", "semicolon", "glob", "regex", "uppercase"])
def test_script_refuses_a_non_hex_id_before_grep_sees_it(tmp_path, shell_path, bad):
    marker = tmp_path / "pwned"
    proc = fake_proc(tmp_path, {100: LAYOUTS["containerd-systemd"]})
    out = run_script(bad.format(marker=marker), proc, shell_path)
    assert out.returncode == 2 and out.stdout == ""
    assert "not a hex container id" in out.stderr
    assert not marker.exists()


def test_parse_pids_sorts_and_ignores_noise():
    assert parse_pids("4120\n877\n\n877\nsh: x\n") == [877, 4120]


def test_script_finds_a_real_process_in_a_real_cgroup(tmp_path):
    """Against the real /proc: a process put into a containerd-style scope is found."""
    from sandbox.cgroups import CgroupTree, scope_relpath

    tree, why = CgroupTree.create(900 + os.getpid() % 1000, tmp_path)
    if tree is None:
        pytest.skip(f"no writable cgroup hierarchy: {why}")
    hexid = secrets.token_hex(32)
    scope = tree.add_scope(scope_relpath("BestEffort", UID.replace("_", "-"), hexid))
    with scope.joining() as join:
        proc = subprocess.Popen(["sleep", "60"], preexec_fn=join)
    try:
        out = run_script(hexid)
        assert out.returncode == 0, out.stderr
        assert parse_pids(out.stdout) == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
        tree.remove_scope(scope)
        assert tree.remove_all() and not tree.root.exists()
