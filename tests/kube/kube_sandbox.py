"""Helpers for tests against the sandbox: a handle on one running sandbox, extra users.

Kept under tests/kube/ until the shared fixtures are factored into tests/conftest.py.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
from dataclasses import dataclass

REPO = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent
KUBECTL = str(VENV_BIN / "kubectl")


@dataclass
class Sandbox:
    state: pathlib.Path
    kubeconfig: pathlib.Path
    cache: pathlib.Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECACHEDIR": str(self.cache),
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    def kubectl(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
                              input=input, capture_output=True, text=True, env=self.env(),
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def apply(self, manifest: str) -> None:
        self.kubectl("apply", "-f", "-", input=manifest)

    def wait_running(self, namespace: str, selector: str, count: int, timeout: float = 30) -> None:
        """Until `count` pods match and all are Running and Ready."""
        deadline = time.monotonic() + timeout
        jsonpath = "{range .items[*]}{.status.phase}/{.status.conditions[?(@.type=='Ready')].status} {end}"
        while True:
            out = self.kubectl("get", "pods", "-n", namespace, "-l", selector,
                               "-o", f"jsonpath={jsonpath}").split()
            if len(out) == count and all(s == "Running/True" for s in out):
                return
            assert time.monotonic() < deadline, f"pods {namespace}/{selector}: {out}"
            time.sleep(0.2)


def add_user(sandbox: Sandbox, user: str, deny: list[str], token: str | None = None) -> pathlib.Path:
    """A second token in the sandbox's RBAC table (re-read on change) and a kubeconfig for it."""
    from sandbox.testing import add_user as add_sandbox_user

    return add_sandbox_user(sandbox.state, sandbox.kubeconfig, user, deny, token)


def self_signed(cn: str):
    """(cert PEM, key PEM, the same cert as its own CA)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert_pem, key_pem, cert_pem
