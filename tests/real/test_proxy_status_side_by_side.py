"""`kubectl mesh sync` beside the real `istioctl proxy-status` on the same sandbox mesh, both
over XDS (the debug type `istio.io/debug/syncz`): the same proxies with the same status per
type – all SYNCED after start, and the gateway's RDS STALE while its Envoy is paused through
a route change. istioctl reaches the sandbox istiod both ways it reaches a real one: through
a port-forward to the istiod pod's 15012 and with `--xds-address`, each time with a TLS
connection and a TokenRequest token that the istiod double has the API double review."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from sandbox.real.controlplane import locate_binaries

pytestmark = pytest.mark.timeout(180)
VS_PATCH = '[{"op":"add","path":"/spec/http/0/timeout","value":"%s"}]'
VS_UNDO = '[{"op":"remove","path":"/spec/http/0/timeout"}]'
SHORT = {"type.googleapis.com/envoy.config.cluster.v3.Cluster": "CDS",
         "type.googleapis.com/envoy.config.listener.v3.Listener": "LDS",
         "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment": "EDS",
         "type.googleapis.com/envoy.config.route.v3.RouteConfiguration": "RDS"}


@pytest.fixture(scope="module")
def istioctl():
    return str(locate_binaries() / "istioctl")


def _istioctl_statuses(sandbox, istioctl, *flags) -> dict[str, dict[str, str]]:
    """{proxy: {CDS: SYNCED, ...}} from `istioctl proxy-status -o json` (the responses'
    ClientConfigs in protojson)."""
    out = subprocess.run([istioctl, "proxy-status", "-o", "json", *flags], env=sandbox.env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    statuses = {}
    decoder = json.JSONDecoder()
    text, pos = out.stdout, 0
    while pos < len(text.rstrip()):  # one JSON document per istiod
        while text[pos].isspace():
            pos += 1
        response, pos = decoder.raw_decode(text, pos)
        for config in response.get("resources") or []:
            types = {SHORT[c["typeUrl"]]: c.get("configStatus", "UNKNOWN").replace("_", " ")
                     for c in config.get("genericXdsConfigs") or [] if c["typeUrl"] in SHORT}
            statuses[config["node"]["id"]] = types
    return statuses


def _ours(mesh, *flags) -> dict[str, dict[str, str]]:
    out = mesh("sync", "-o", "json", *flags)
    assert out.returncode in (0, 7), out.stderr
    return {p["name"]: {t: v["status"] for t, v in p["types"].items()
                        if t in SHORT.values() and v["status"] != "IGNORED"}
            for p in json.loads(out.stdout)}


def test_same_proxies_same_statuses_synced(sandbox, mesh, istioctl):
    assert mesh("sync", "--wait", "--timeout", "30s").returncode == 0
    ip = sandbox.pod_ip("istio-system", "app=istiod")
    ours = _ours(mesh)
    assert ours and all(set(t.values()) == {"SYNCED"} for t in ours.values())
    assert _istioctl_statuses(sandbox, istioctl) == ours
    assert _istioctl_statuses(sandbox, istioctl, "--xds-address", f"{ip}:15012") == ours
    assert _ours(mesh, "--xds-address", f"{ip}:15012", "--authority",
                 "istiod.istio-system.svc") == ours


def test_same_stale_type_while_the_gateway_is_paused(sandbox, mesh, istioctl):
    gateway = sandbox.pods("istio-system", "istio=ingressgateway")[0]["metadata"]["name"]
    pid = next(c["pid"] for p in sandbox.status() if p["name"] == gateway
               for c in p["containers"] if c["name"] == "istio-proxy")
    os.kill(pid, signal.SIGSTOP)
    try:
        sandbox.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type",
                        "json", "-p", VS_PATCH % "3s")
        ref = f"{gateway}.istio-system"
        ours = sandbox.wait_for(lambda: (o := _ours(mesh)) and o[ref].get("RDS") == "STALE"
                                and o, timeout=20, what="the gateway's RDS STALE")
        theirs = _istioctl_statuses(sandbox, istioctl)
        assert set(theirs) == set(ours)
        assert theirs[ref] == ours[ref] and theirs[ref]["RDS"] == "STALE"
    finally:
        os.kill(pid, signal.SIGCONT)
        sandbox.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type",
                        "json", "-p", VS_UNDO, check=False)
    assert mesh("sync", "--wait", "--timeout", "30s").returncode == 0


def _verdicts(text: str) -> list[str]:
    """`Clusters Match`, `Routes Don't Match`, ... (istioctl adds `(RDS last loaded at ...)`)."""
    return [line.split(" (")[0] for line in text.splitlines()
            if line.split(" ")[0] in ("Clusters", "Listeners", "Routes")]


def test_same_diff_verdicts_over_the_config_dump_debug_type(sandbox, mesh, istioctl):
    """`istioctl proxy-status <pod>` and `sync --diff` both ask the debug type
    istio.io/debug/config_dump, here with istiod's HTTP debug endpoints off. A push lost on
    the way (the `lose-pushes` fault: istiod believes the gateway ACKed new routes its Envoy
    never got) must show in both."""
    from sandbox.istiod.faults import FAULT_ANNOTATION
    gateway = sandbox.pods("istio-system", "istio=ingressgateway")[0]["metadata"]["name"]
    ref = f"{gateway}.istio-system"

    def both():
        with sandbox.istiod_debug_http(False):
            theirs = subprocess.run([istioctl, "proxy-status", ref], env=sandbox.env(),
                                    capture_output=True, text=True, timeout=60)
            ours = mesh("sync", ref, "--diff")
        assert theirs.returncode == 0, theirs.stderr
        assert "(XDS 15012) with the proxy's own config dump" in ours.stderr, ours.stderr
        return _verdicts(theirs.stdout), _verdicts(ours.stdout), ours.returncode

    theirs, ours, code = both()
    assert theirs == ours == ["Clusters Match", "Listeners Match", "Routes Match"]
    assert code == 0
    sandbox.kubectl("annotate", "pod", gateway, "-n", "istio-system", "--overwrite",
                    f"{FAULT_ANNOTATION}=lose-pushes")
    try:
        sandbox.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type",
                        "json", "-p", VS_PATCH % "7s")
        theirs, ours, code = sandbox.wait_for(
            lambda: (r := both()) and "Routes Don't Match" in r[0] and r, timeout=30,
            what="istioctl seeing the lost route push")
        assert theirs == ours == ["Clusters Match", "Listeners Match", "Routes Don't Match"]
        assert code == 7
    finally:
        sandbox.kubectl("annotate", "pod", gateway, "-n", "istio-system", "--overwrite",
                        f"{FAULT_ANNOTATION}-")
        sandbox.kubectl("patch", "vs", "catalog-v1-v2", "-n", "istioinaction", "--type",
                        "json", "-p", VS_UNDO, check=False)
    sandbox.wait_for(lambda: _verdicts(mesh("sync", ref, "--diff").stdout)
                     == ["Clusters Match", "Listeners Match", "Routes Match"], timeout=30,
                     what="the gateway healed")
