"""QoS classes as the real API server computes them at creation (sandbox/qos.py), checked
end to end on the double here and on the real API server in tests/real/test_kubelet.py."""

from __future__ import annotations

import fractions
import json

import pytest

from sandbox.qos import pod_qos, quantity

CASES = {
    "none": ({}, "BestEffort"),
    "limits-only": ({"limits": {"cpu": "100m", "memory": "64Mi"}}, "Guaranteed"),
    "equal": ({"requests": {"cpu": "0.1", "memory": "67108864"},
               "limits": {"cpu": "100m", "memory": "64Mi"}}, "Guaranteed"),
    "requests-only": ({"requests": {"cpu": "100m"}}, "Burstable"),
    "cpu-limit-only": ({"limits": {"cpu": "1"}}, "Burstable"),
}


@pytest.mark.parametrize("text,value", [
    ("100m", fractions.Fraction(1, 10)), ("0.1", fractions.Fraction(1, 10)),
    ("64Mi", 64 * 2**20), ("1e3", 1000), ("2k", 2000), ("1.5Gi", 3 * 2**29)],
    ids=["milli", "decimal", "mebi", "exponent", "kilo", "fractional-gibi"])
def test_quantity(text, value):
    assert quantity(text) == value


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_pod_qos(case):
    resources, expected = CASES[case]
    from sandbox.qos import default_requests
    container = {"name": "a", "resources": json.loads(json.dumps(resources))}
    default_requests(container)
    assert pod_qos({"containers": [container]}) == expected


def test_mixed_containers_are_burstable():
    guaranteed = {"resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                "limits": {"cpu": "1", "memory": "1Gi"}}}
    assert pod_qos({"containers": [guaranteed, {"resources": {}}]}) == "Burstable"
    assert pod_qos({"initContainers": [{}], "containers": [guaranteed]}) == "Burstable"


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_double_sets_qos_class_at_creation(sandbox, case):
    resources, expected = CASES[case]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"qos-{case}"},
           "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "600"],
                                    "resources": resources}]}}
    try:
        created = json.loads(sandbox.kubectl("create", "-f", "-", "-o", "json",
                                             input=json.dumps(pod)).stdout)
        assert created["status"]["qosClass"] == expected
        if "limits" in resources:
            assert created["spec"]["containers"][0]["resources"]["requests"].keys() >= \
                resources["limits"].keys()
        running = sandbox.wait_for(lambda: (lambda p: p if p["status"].get("phase") == "Running"
                                            else None)(json.loads(sandbox.kubectl(
                                                "get", "pod", f"qos-{case}", "-o", "json").stdout)),
                                   what="running")
        assert running["status"]["qosClass"] == expected
    finally:
        sandbox.kubectl("delete", "pod", f"qos-{case}", "--grace-period=0", "--wait=false",
                        check=False)
