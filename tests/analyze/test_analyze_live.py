"""`kubectl mesh analyze --live` through real kubectl against the sandbox's default scenario
with real Envoys: the gateway's routes to subsets no DestinationRule defines (routes --check),
then a DestinationRule the proxies reject (the sandbox istiod gives its clusters a ring
hash config whose minimum exceeds its maximum for the annotation below; real Envoy NACKs CDS
with its own text), which they therefore do not carry; after the valid rule is synced, nothing."""

from __future__ import annotations

import json
import pathlib
import time

import pytest

SCENARIOS = pathlib.Path(__file__).resolve().parents[2] / "sandbox" / "scenarios"
FIX = SCENARIOS / "catalog-destinationrule.yaml"
INVALID = "sandbox.kubectl-mesh.io/invalid"
DANGLING = ("route sends to cluster outbound|80|{}|catalog.istioinaction.svc.cluster.local, "
            "which does not exist (503 NC)")


def live(mesh, *args):
    result = mesh("analyze", "-n", "istioinaction", "--live", "-o", "json", *args)
    assert result.returncode in (0, 7), result.stderr
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout or "[]"), result.stderr


def until(condition, timeout: float = 60.0):
    """Poll `condition()` until it returns something true (its value), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.5)


def test_live_findings_of_the_default_scenario(sandbox, mesh):
    code, messages, _ = live(mesh)
    assert code == 7
    gateway = [m for m in messages if m["code"] == "MESH0003"]
    assert [m["origin"] for m in gateway] == ["VirtualService istioinaction/catalog-v1-v2"] * 2
    for subset, m in zip(("version-v1", "version-v2"), gateway):
        assert m["level"] == "Error" and DANGLING.format(subset) in m["message"]
        assert m["message"].startswith("Gateway proxy istio-ingressgateway-")
        assert m["documentationUrl"].endswith("#analyze-live-codes")
    # the VirtualService itself is carried: no MESH0001; nothing was rejected: no MESH0002
    assert not [m for m in messages if m["code"] in ("MESH0001", "MESH0002")]
    # without --live: istioctl's messages only
    plain = mesh("analyze", "-n", "istioinaction")
    assert "MESH" not in plain.stdout and plain.returncode == 7


@pytest.mark.sandbox_istiod_only("the NACK is made by the annotation "
                                  "sandbox.kubectl-mesh.io/invalid, which only the sandbox "
                                  "istiod turns into an invalid cluster")
def test_a_rejected_destination_rule_is_not_carried_and_its_nack_is_shown(sandbox, mesh):
    rejected = FIX.read_text().replace("  namespace: istioinaction\n",
                                       f"  namespace: istioinaction\n  annotations:\n"
                                       f"    {INVALID}: \"true\"\n", 1)
    assert INVALID in rejected
    sandbox.kubectl("apply", "-f", "-", input=rejected)
    try:
        def nacked():
            _, messages, _ = live(mesh)
            return messages if any(m["code"] == "MESH0002" for m in messages) else None

        messages = until(nacked)
        nacks = [m for m in messages if m["code"] == "MESH0002"]
        assert all(m["level"] == "Error" and "rejected (NACKed) istiod's latest CDS push: "
                   in m["message"] and "Error adding/updating cluster(s) outbound|80||catalog.istioinaction"
                   in m["message"] and "minimum_ring_size" in m["message"] for m in nacks), nacks
        # the catalog sidecars and the gateway, each once
        assert len(nacks) == len({m["message"].split()[1] for m in nacks}) >= 2
        assert {m["origin"].split()[0] for m in nacks} == {"Pod"}
        missing = [m for m in messages if m["code"] == "MESH0001"]
        assert missing and all(
            m["origin"] == "DestinationRule istioinaction/catalog" and m["level"] == "Warning"
            and "has no DestinationRule" in m["message"] for m in missing), messages
        # the rule is valid as far as istioctl's analyzers go: no IST0101 now
        assert not [m for m in messages if m["code"] == "IST0101"]

        sandbox.kubectl("apply", "-f", str(FIX))  # the same rule without the annotation
        mesh("sync", "-n", "istioinaction", "--wait")

        def clean():
            # without the IST0164 lines of the real backend's webhooks, called by an IP url
            code, messages, _ = live(mesh, "--suppress", "IST0164=*WebhookConfiguration *")
            return (code, messages) if code == 0 else None

        code, messages = until(clean)
        assert messages == []
    finally:
        sandbox.kubectl("delete", "-f", str(FIX), "--ignore-not-found")


def test_live_does_not_go_with_files_alone(mesh):
    result = mesh("analyze", "--use-kube=false", "--live", str(FIX))
    assert result.returncode == 2 and result.stdout == ""
    assert "--live asks the cluster's proxies" in result.stderr


def test_live_without_the_right_to_list_pods_is_one_warning(sandbox, mesh):
    kubeconfig = sandbox.add_user("no-pods-live", ["list pods"])
    result = mesh("analyze", "-n", "istioinaction", "--live",
                  env=mesh.env(KUBECONFIG=str(kubeconfig)))
    assert result.returncode == 7, result.stderr  # istioctl's IST0101s still
    assert "Traceback" not in result.stderr
    assert "IST0101" in result.stdout and "MESH" not in result.stdout
    assert len([line for line in result.stderr.splitlines()
                if "cannot list the proxies' pods" in line]) == 1, result.stderr
