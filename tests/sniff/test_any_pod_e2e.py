"""sniff on any pod, as ksniff users expect: a pod without an istio-proxy sidecar is captured
like one with it (exec, ephemeral and node modes need no Envoy), a mesh-only option says in
one line that it does not apply, and a capture that did not happen never looks like one: a
bad filter fails before anything is created, no file is left, no packet count is printed."""

from __future__ import annotations

import time

import pytest

from kubectl_mesh.capture.pcap import read_file
from tests.sniff.conftest import Traffic, tcpdumps_for, tshark, wait_gone

pytestmark = pytest.mark.timeout(180)


def ephemeral_names(sandbox, pod: dict) -> list[str]:
    current = sandbox.kubectl("get", "pod", pod["metadata"]["name"], "-n", "plain", "-o",
                              "jsonpath={.spec.ephemeralContainers[*].name}").stdout
    return current.split()


def test_a_pod_without_a_sidecar_is_captured_in_the_container_chosen_with_c(mesh, web, tmp_path):
    out = tmp_path / "web.pcap"
    ip = web["status"]["podIP"]
    with Traffic(f"http://{ip}:3000/"):
        result = mesh("deploy/web", "-n", "plain", "-c", "web", "--mode", "exec",
                      "-o", str(out), "--count", "10", "-f", "tcp port 3000")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert f"capturing on any in {web['metadata']['name']}.plain (mode exec)" in err
    assert "via exec (container web)" in err
    assert "note:" not in err  # no mesh-only option was given
    assert len(read_file(str(out))[1]) == 10
    ports = tshark("-r", str(out), "-T", "fields", "-e", "tcp.port").split()
    assert "3000" in ",".join(ports)
    assert wait_gone(lambda: tcpdumps_for(ip), 5)


def test_auto_mode_on_a_pod_without_a_sidecar_finds_the_container_with_tcpdump(mesh, web,
                                                                              tmp_path):
    out = tmp_path / "auto.pcap"
    with Traffic(f"http://{web['status']['podIP']}:3000/"):
        result = mesh(f"{web['metadata']['name']}.plain", "-o", str(out), "--count", "3")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    # helper has no tcpdump (tried first, said why), web has it: no ephemeral container
    assert "via exec (container web)" in err
    assert len(read_file(str(out))[1]) == 3


@pytest.mark.parametrize("mode", [["--mode", "ephemeral"], ["--mode", "node", "--privileged"]],
                         ids=["ephemeral", "node"])
def test_debug_container_modes_target_the_container_chosen_with_c(mesh, web, tmp_path, mode):
    out = tmp_path / "m.pcap"
    with Traffic(f"http://{web['status']['podIP']}:3000/"):
        result = mesh("deploy/web", "-n", "plain", "-c", "helper", *mode, "-o", str(out),
                      "--count", "3")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert len(read_file(str(out))[1]) == 3
    if mode[1] == "node":
        assert "(container helper)" in err  # the PID of the container chosen with -c
    else:
        pod = mesh.sb.kubectl("get", "pod", web["metadata"]["name"], "-n", "plain", "-o",
                              "jsonpath={.spec.ephemeralContainers[-1].targetContainerName}")
        assert pod.stdout == "helper"


def test_lo_on_a_pod_without_a_sidecar_says_once_that_it_is_no_plaintext_leg(mesh, web,
                                                                             tmp_path):
    result = mesh("deploy/web", "-n", "plain", "-c", "web", "-i", "lo", "-o",
                  str(tmp_path / "lo.pcap"), "--duration", "1s")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert notes == [f"note: {web['metadata']['name']}.plain has no istio-proxy sidecar: -i lo "
                     "captures only its own loopback traffic, not an app<->sidecar plaintext "
                     "leg"], err


def test_lo_on_a_sidecar_pod_needs_no_note(mesh, tmp_path):
    result = mesh("deploy/istio-ingressgateway", "-n", "istio-system", "-i", "lo", "-o",
                  str(tmp_path / "gw.pcap"), "--duration", "1s")
    assert result.returncode == 0, result.stderr
    assert b"note:" not in result.stderr


@pytest.mark.parametrize("mode", ["auto", "ephemeral"])
def test_a_bad_filter_fails_at_once_before_anything_is_created(mesh, sandbox, web, tmp_path,
                                                               mode):
    out = tmp_path / "bad.pcap"
    out.write_bytes(b"yesterday's capture")
    before = ephemeral_names(sandbox, web)
    started = time.monotonic()
    result = mesh("deploy/web", "-n", "plain", "--mode", mode, "-o", str(out),
                  "--duration", "1h", "-f", "tcp port (")
    elapsed = time.monotonic() - started
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert elapsed < 10, err  # not an hour, and before any setup
    assert err.splitlines() == ["error: the capture filter 'tcp port (' is not valid on -i any: "
                                "can't parse filter expression: syntax error (see `man "
                                "pcap-filter`; e.g. -f 'tcp port 8080')"], err
    assert ephemeral_names(sandbox, web) == before  # no debug container was created
    assert out.read_bytes() == b"yesterday's capture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pcap"]


def test_a_filter_construct_the_link_type_cannot_match_is_refused_too(mesh, web, tmp_path):
    # Linux cooked capture (-i any) has no VLAN tags: tcpdump in the pod would refuse it.
    result = mesh("deploy/web", "-n", "plain", "-o", str(tmp_path / "v.pcap"), "-f", "vlan 3")
    assert result.returncode == 2
    assert b"no VLAN support" in result.stderr
    result = mesh("deploy/web", "-n", "plain", "-c", "web", "-i", "eth0", "--mode", "exec",
                  "-o", str(tmp_path / "v.pcap"), "-f", "vlan 3", "--duration", "1s")
    assert result.returncode == 0, result.stderr  # on Ethernet it is a valid filter


@pytest.mark.parametrize("output", ["file", "dir"])
def test_a_capture_that_failed_in_the_pod_leaves_no_file_and_no_count(mesh, web, tmp_path,
                                                                      output):
    target = str(tmp_path / "x.pcap") if output == "file" else f"{tmp_path}/caps/"
    result = mesh("deploy/web", "-n", "plain", "-c", "web", "--mode", "exec", "-i", "eth1",
                  "-o", target, "--duration", "1h")
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "has no interface eth1" in err
    assert "captured 0 packets" not in err and "packets written" not in err
    assert list(tmp_path.iterdir()) == []  # neither the file nor the new directory
