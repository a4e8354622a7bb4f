"""The API double's TokenRequest and TokenReview through REAL kubectl (`kubectl create token`
is a TokenRequest, in protobuf; a TokenReview is created from JSON)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.timeout(120)


def _review(sandbox, token: str, audiences: list[str]) -> dict:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences}}
    out = sandbox.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(body))
    return json.loads(out.stdout)["status"]


def test_a_requested_token_is_reviewed_with_its_audience_only(sandbox):
    token = sandbox.kubectl("create", "token", "default", "-n", "istio-system",
                            "--audience", "istio-ca").stdout.strip()
    assert token.count(".") == 2  # JWT-shaped
    status = _review(sandbox, token, ["istio-ca"])
    assert status["authenticated"] is True
    assert status["user"]["username"] == "system:serviceaccount:istio-system:default"
    assert "system:serviceaccounts" in status["user"]["groups"]
    status = _review(sandbox, token, ["https://kubernetes.default.svc.cluster.local"])
    assert status["authenticated"] is False and "audiences" in status["error"]
    assert _review(sandbox, token[:-4] + "AAAA", ["istio-ca"])["authenticated"] is False


def test_token_request_checks_the_service_account_and_duration(sandbox):
    out = sandbox.kubectl("create", "token", "nobody", "-n", "istio-system", check=False)
    assert out.returncode != 0 and 'serviceaccounts "nobody" not found' in out.stderr
    out = sandbox.kubectl("create", "token", "default", "-n", "istio-system", "--duration",
                          "60s", check=False)
    assert out.returncode != 0 and "less than 10 minutes" in out.stderr
