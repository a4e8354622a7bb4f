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
    # as the real API server words them (pkg/serviceaccount/jwt.go); `authenticated: false`
    # is omitted
    api = "https://kubernetes.default.svc.cluster.local"
    assert _review(sandbox, token, [api]) == {"user": {}, "error": (
        f'[invalid bearer token, token audiences ["istio-ca"] is invalid for the target '
        f'audiences ["{api}"]]')}
    assert _review(sandbox, token[:-4] + "AAAA", ["istio-ca"]) == {"user": {}, "error": (
        "[invalid bearer token, go-jose/go-jose: error in cryptographic primitive]")}
    assert _review(sandbox, "garbage", ["istio-ca"]) == {"user": {},
                                                         "error": "invalid bearer token"}


def test_token_request_checks_the_service_account_and_duration(sandbox):
    out = sandbox.kubectl("create", "token", "nobody", "-n", "istio-system", check=False)
    assert out.returncode != 0 and 'serviceaccounts "nobody" not found' in out.stderr
    out = sandbox.kubectl("create", "token", "default", "-n", "istio-system", "--duration",
                          "60s", check=False)
    assert out.returncode != 0 and "less than 10 minutes" in out.stderr
