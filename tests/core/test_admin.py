"""EnvoyAdmin against a REAL Envoy (127.0.60.x) and a socket that never answers."""

from __future__ import annotations

import socket
import time

import pytest

from .envoy_fixture import CATALOG, HOST, RunningEnvoy, free_port
from kubectl_mesh.admin import EnvoyAdmin, parse_loggers
from kubectl_mesh.configdump import ConfigDump, cluster_table, route_table
from kubectl_mesh.errors import AdminError, BadInputError, UnreachableError

POD = "catalog-7d9f.istioinaction"


@pytest.fixture(scope="module")
def envoy(tmp_path_factory):
    running = RunningEnvoy(tmp_path_factory.mktemp("envoy"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def admin(envoy):
    with EnvoyAdmin(envoy.base_url, POD, timeout=5) as client:
        yield client


def test_ready_and_server_info(admin):
    assert admin.ready() is True
    info = admin.server_info()
    assert info["state"] == "LIVE" and "/1.40." in info["version"]


def test_config_dump_mask_parses_into_model(admin):
    raw = admin.config_dump(mask="static_clusters")
    dump = ConfigDump(raw, POD)
    assert not dump.has("bootstrap")  # mask kept only the cluster section's field
    rows = cluster_table(dump.clusters).rows
    assert ("catalog.istioinaction.svc.cluster.local", "80", "v1", "outbound", "STATIC",
            "catalog.istioinaction") in rows


def test_config_dump_full_routes_and_eds(admin):
    dump = ConfigDump(admin.config_dump(include_eds=True), POD)
    assert dump.bootstrap.node_id.startswith("sidecar~127.0.60.1~catalog-7d9f")
    (config,) = dump.routes
    route = config.virtual_hosts[0].routes[0]
    assert route.action.weighted_clusters == ((CATALOG, 90), ("backend", 10))
    assert route.action.timeout == "3s" and route.virtual_service == "catalog.istioinaction"
    assert route_table(dump.routes).rows == [
        ("8080", "catalog:80", "catalog, catalog.istioinaction.svc.cluster.local", "/*",
         "catalog.istioinaction")]
    assert {e.endpoint for e in dump.endpoints} == {"127.0.60.2:9", "127.0.60.2:10"}


def test_config_dump_resource_and_name_regex(admin):
    raw = admin.config_dump(resource="static_clusters", name_regex=".*catalog.*")
    assert [c.name for c in ConfigDump(raw, POD).clusters] == [CATALOG]


def test_bad_name_regex_is_400_naming_pod(admin):
    with pytest.raises(AdminError) as e:
        admin.config_dump(name_regex="(")
    assert e.value.status == 400 and POD in str(e.value) and "name_regex" in e.value.body


def test_unknown_resource_is_404(admin):
    with pytest.raises(AdminError) as e:
        admin.config_dump(resource="no_such_field")
    assert e.value.status == 404 and POD in e.value.message


def test_clusters_listeners_stats(admin):
    statuses = admin.clusters()["cluster_statuses"]
    assert {c["name"] for c in statuses} == {"backend", CATALOG}
    assert admin.listeners()["listener_statuses"][0]["name"] == "0.0.0.0_8080"
    stats = {s["name"]: s.get("value") for s in admin.stats(filter=r"^server\.")["stats"]
             if "name" in s}
    assert stats["server.concurrency"] == 1
    assert isinstance(stats["server.days_until_first_cert_expiring"], int)


def test_logging_set_and_read_back(admin):
    levels = admin.logging(levels={"http": "debug", "router": "trace"})
    assert levels["http"] == "debug" and levels["router"] == "trace" and len(levels) > 50
    assert set(admin.logging(level="warning").values()) == {"warning"}
    with pytest.raises(AdminError) as e:
        admin.logging(level="loud")
    assert e.value.status == 400 and "unknown logger level" in e.value.body


def test_bytes_fetched_accounts_every_response(envoy):
    with EnvoyAdmin(envoy.base_url, POD) as client:
        client.server_info()
        first = client.bytes_fetched
        client.config_dump()
        assert 0 < first < client.bytes_fetched


def test_connection_refused_names_pod():
    port = free_port()  # bound then released: nothing listens
    with pytest.raises(UnreachableError) as e:
        EnvoyAdmin(f"http://{HOST}:{port}", POD, timeout=2).server_info()
    assert POD in str(e.value) and not isinstance(e.value, AdminError)


def test_timeout_against_silent_socket():
    with socket.socket() as silent:  # accepts (kernel backlog) but never answers
        silent.bind((HOST, 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(UnreachableError) as e:
            EnvoyAdmin(f"http://{HOST}:{port}", POD, timeout=0.3).ready()
        assert time.monotonic() - started < 3
    assert POD in e.value.message and "--request-timeout" in e.value.hint


def test_non_json_body_is_bad_input_and_says_envoys_line(envoy):
    """Envoy answers 200 with one line of text where it cannot print its config as JSON (a
    rejected resource of an unknown type, docs/real-istio.md); that line is the cause."""
    with EnvoyAdmin(envoy.base_url, POD) as client, pytest.raises(BadInputError, match=POD) as e:
        client._json("GET", "/ready", {})
    assert e.value.message.endswith("returned non-JSON for /ready (5 bytes): LIVE")
    assert "sync --verify" in e.value.hint


def test_parse_loggers():
    text = "active loggers:\n  admin: info\n  http: debug\n"
    assert parse_loggers(text) == {"admin": "info", "http": "debug"}


def test_while_waiting_runs_once_after_the_request_is_sent():
    """The hook overlaps Envoy's work: it must run after the request left (the server has
    it) and before the answer is read (the server holds it until the hook ran)."""
    import threading

    server = socket.socket()
    server.bind((HOST, 0))
    server.listen(1)
    received, release = threading.Event(), threading.Event()

    def serve():
        conn, _ = server.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            received.set()
            release.wait(5)
            body = b'{"configs": []}'
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    calls = []

    def waiting():
        calls.append(received.wait(5))
        release.set()

    try:
        with EnvoyAdmin(f"http://{HOST}:{server.getsockname()[1]}", POD, timeout=5) as admin:
            assert admin.config_dump(mask="dynamic_route_configs",
                                     while_waiting=waiting) == {"configs": []}
    finally:
        release.set()
        try:
            server.shutdown(socket.SHUT_RDWR)  # wakes accept() if no request came
        except OSError:
            pass
        server.close()
        thread.join(5)
    assert calls == [True]
