"""`bootstrap`, `ecds`, `all` and `rootca-compare` on saved dumps (`--file`): the models and
the commands' exit codes, without a cluster."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json

import pytest

from kubectl_mesh.cli import all as all_cmd
from kubectl_mesh.cli import bootstrap, ecds, rootca_compare

ADMIN = "type.googleapis.com/envoy.admin.v3."


def run(command, *argv):
    out, err = io.StringIO(), io.StringIO()
    code = command.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def write(tmp_path, name, configs) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"configs": configs}))
    return str(path)


BOOT = {"@type": ADMIN + "BootstrapConfigDump", "bootstrap": {
    "node": {"id": "sidecar~10.1.2.3~web-1.shop~shop.svc.cluster.local", "cluster": "web.shop",
             "metadata": {"ISTIO_VERSION": "1.28.0", "ISTIO_PROXY_SHA": "istio-proxy:abc123"},
             "user_agent_build_version": {"version": {"major_number": 1, "minor_number": 40},
                                          "metadata": {"revision.status": "Clean",
                                                       "build.type": "RELEASE",
                                                       "ssl.version": "BoringSSL"}}},
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
    "dynamic_resources": {"ads_config": {"api_type": "GRPC", "grpc_services": [
        {"envoy_grpc": {"cluster_name": "xds-grpc"}}]}},
    "static_resources": {"clusters": [
        {"name": "xds-grpc", "load_assignment": {"endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "10.0.0.9", "port_value": 15012}}}}]}]}},
        {"name": "prometheus_stats"}]}},
    "last_updated": "2026-12-06T10:00:00Z"}


def test_bootstrap_rows_and_json(tmp_path):
    path = write(tmp_path, "boot.json", [BOOT])
    code, out, err = run(bootstrap, "--file", path)
    assert (code, err) == (0, "")
    rows = [tuple(part.strip() for part in line.split(":", 1)) for line in out.splitlines()]
    assert rows == [
        ("Istio Version", "1.28.0"), ("Istio Proxy Version", "abc123"),  # after the ':'
        ("Envoy Version", "1.40.0/Clean/RELEASE/BoringSSL"),
        ("Node ID", "sidecar~10.1.2.3~web-1.shop~shop.svc.cluster.local"),
        ("Cluster", "web.shop"), ("Admin", "127.0.0.1:15000"),
        ("xDS Server", "ADS GRPC xds-grpc 10.0.0.9:15012"),
        ("Static Clusters", "xds-grpc, prometheus_stats")]
    # one column of values, one space after the longest label (istioctl's tabwriter padding 1)
    assert {line.index("1.28.0") for line in out.splitlines()[:1]} == {21}
    code, out, _ = run(bootstrap, "--file", path, "-o", "json")
    assert code == 0
    assert json.loads(out) == {k: v for k, v in BOOT.items() if k != "@type"}


def test_bootstrap_of_a_dump_without_one_is_bad_input(tmp_path):
    path = write(tmp_path, "routes.json", [{"@type": ADMIN + "RoutesConfigDump"}])
    code, out, err = run(bootstrap, "--file", path)
    assert (code, out) == (6, "")
    assert err.count("\n") == 1 and "has no bootstrap section" in err


def ecds_section(*items):
    return {"@type": ADMIN + "EcdsConfigDump", "ecds_filters": [
        {"version_info": "v1", "ecds_filter": {
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": name, "typed_config": {"@type": "type.googleapis.com/" + kind} if kind else {}}}
        for name, kind in items]}


def test_ecds_merges_every_section_and_sorts_by_type_then_name(tmp_path):
    wasm = "envoy.extensions.filters.http.wasm.v3.Wasm"
    path = write(tmp_path, "ecds.json", [
        ecds_section(("b.rate-limit", wasm), ("stats/Outbound", "")),
        ecds_section(("a.metadata", wasm), ("stats/Inbound", ""))])
    code, out, err = run(ecds, "--file", path)
    assert (code, err) == (0, "")
    assert [line.split() for line in out.splitlines()] == [
        ["ECDS", "NAME", "TYPE"], ["stats/Inbound"], ["stats/Outbound"],
        ["a.metadata", wasm], ["b.rate-limit", wasm]]
    code, out, _ = run(ecds, "--file", path, "-o", "json")
    assert [e["ecds_filter"]["name"] for e in json.loads(out)] == [
        "stats/Inbound", "stats/Outbound", "a.metadata", "b.rate-limit"]


def test_ecds_of_a_dump_without_extension_configs_is_empty(tmp_path):
    path = write(tmp_path, "boot.json", [BOOT])
    code, out, err = run(ecds, "--file", path)
    assert (code, out.split(), err) == (0, ["ECDS", "NAME", "TYPE"], "")


def test_all_writes_each_table_of_the_dump(tmp_path):
    path = write(tmp_path, "all.json", [BOOT, {
        "@type": ADMIN + "ClustersConfigDump",
        "dynamic_active_clusters": [{"cluster": {"name": "outbound|80||web.shop.svc.cluster.local",
                                                 "type": "EDS"}}]},
        {"@type": ADMIN + "ListenersConfigDump"}, {"@type": ADMIN + "RoutesConfigDump"},
        {"@type": ADMIN + "SecretsConfigDump"}])
    code, out, err = run(all_cmd, "--file", path)
    assert (code, err) == (0, "")
    sections = out.split("\n\n")
    assert [s.splitlines()[0].split()[0] for s in sections] == [
        "Istio", "SERVICE", "ADDRESSES", "NAME", "No"]
    assert sections[1].splitlines()[1].split() == ["web.shop.svc.cluster.local", "80", "-",
                                                   "outbound", "EDS"]
    code, out, _ = run(all_cmd, "--file", path, "-o", "json")
    assert json.loads(out) == json.loads(open(path).read())


# ---- rootca-compare ----------------------------------------------------------------------------


def certificate(common_name: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def secrets_dump(tmp_path, name, *pems, secret="ROOTCA"):
    bundle = b"".join(pems)
    return write(tmp_path, name, [{"@type": ADMIN + "SecretsConfigDump", "dynamic_active_secrets": [
        {"name": "default", "secret": {"name": "default", "tls_certificate": {}}},
        {"name": secret, "secret": {"name": secret, "validation_context": {
            "trusted_ca": {"inline_bytes": base64.b64encode(bundle).decode()}}}}]}])


@pytest.fixture(scope="module")
def roots():
    return certificate("cluster.local"), certificate("other.mesh")


def test_rootca_compare_same_root_or_a_shared_one(tmp_path, roots):
    a, b = roots
    one, other = secrets_dump(tmp_path, "1.json", a), secrets_dump(tmp_path, "2.json", a)
    code, out, err = run(rootca_compare, "-f", one, "-f", other)
    assert (code, err) == (0, "")
    assert out == (f"Both [{one}] and [{other}] have the identical ROOTCA, theoretically the "
                   "connectivity between them is available\n")
    # a bundle of A and B shares B with a bundle of B (istioctl's TestMatchRootCACerts)
    both, only_b = secrets_dump(tmp_path, "ab.json", a, b), secrets_dump(tmp_path, "b.json", b)
    assert run(rootca_compare, "-f", both, "-f", only_b)[0] == 0


def test_rootca_compare_different_roots_is_a_finding(tmp_path, roots):
    a, b = roots
    one, other = secrets_dump(tmp_path, "a.json", a), secrets_dump(tmp_path, "b.json", b)
    code, out, err = run(rootca_compare, "-f", one, "-f", other)
    assert (code, out) == (7, "")
    assert err == (f"error: Both [{one}] and [{other}] have the non identical ROOTCA, "
                   "theoretically the connectivity between them is unavailable\n")


def test_rootca_compare_bad_input(tmp_path, roots):
    a, _ = roots
    good = secrets_dump(tmp_path, "a.json", a)
    no_root = secrets_dump(tmp_path, "none.json", a, secret="default-other")
    code, out, err = run(rootca_compare, "-f", good, "-f", no_root)
    assert (code, out) == (3, "") and err.startswith(f"error: {no_root} has no ROOTCA secret")
    code, _, err = run(rootca_compare, "-f", good)
    assert code == 2 and "rootca-compare requires 2 pods as an argument" in err
    code, _, err = run(rootca_compare, "pod-a", "-f", good)
    assert code == 2 and "not both" in err
    broken = tmp_path / "broken.json"
    broken.write_text(open(good).read().replace('"inline_bytes": "', '"inline_bytes": "!'))
    code, _, err = run(rootca_compare, "-f", good, "-f", str(broken))
    assert code == 6 and err.count("\n") == 1 and "not base64" in err


def test_a_table_loads_the_models_of_its_own_section_only():
    """`routes` (a small answer: start-up is most of its time) imports the route models and
    not the cluster, listener, endpoint or secret ones; `clusters` not the route ones."""
    import subprocess
    import sys

    dump = "/work/shared/istio-dumps/ingressgw_http_8080_rds_cds.json"  # golden_cases.DUMPS
    script = ("import io, sys; from kubectl_mesh.cli import dispatch; "
              "code = dispatch.run_command(sys.argv[1], ['--file', sys.argv[2]], "
              "stdout=io.StringIO(), stderr=sys.stderr); "
              "print(code, *sorted(m.rsplit('.', 1)[1] for m in sys.modules "
              "if m.startswith('kubectl_mesh.configdump.')))")
    loaded = {}
    for command in ("routes", "clusters"):
        out = subprocess.run([sys.executable, "-c", script, command, dump], capture_output=True,
                             text=True, check=True, timeout=60).stdout.split()
        assert out[0] == "0", out
        loaded[command] = set(out[1:])
    assert "routes" in loaded["routes"]
    assert not loaded["routes"] & {"clusters", "listeners", "endpoints", "secrets"}
    assert "clusters" in loaded["clusters"]
    assert not loaded["clusters"] & {"routes", "listeners", "endpoints", "secrets"}
