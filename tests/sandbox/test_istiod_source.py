"""Object sources: kubeconfig parsing, list+watch against a tiny fake API server, YAML file."""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from sandbox.istiod.source import KINDS, FileSource, KubeConfig, KubeSource

TOKEN = "sandbox-token"


def pod(name, version="1"):
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": version}}


class FakeApi(BaseHTTPRequestHandler):
    """LIST returns one pod at rv 10; the first pod WATCH answers 410 Gone (forcing a relist),
    later ones stream ADDED/DELETED events from `events`."""

    protocol_version = "HTTP/1.0"
    events: queue.Queue
    pod_watches: list
    auth: list

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.auth.append(self.headers.get("Authorization"))
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.send_response(200 if not (url.path == "/api/v1/pods" and "watch" in query
                                       and not self.pod_watches) else 410)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if "watch" not in query:
            items = [pod("listed")] if url.path == "/api/v1/pods" else []
            self.wfile.write(json.dumps({"items": items, "metadata": {"resourceVersion": "10"}}).encode())
            return
        if url.path != "/api/v1/pods":
            time.sleep(1.0)  # an idle watch that the server ends, as real API servers do
            return
        self.pod_watches.append(query["resourceVersion"][0])
        if len(self.pod_watches) == 1:
            return  # the 410
        while True:
            try:
                event = self.events.get(timeout=2)
            except queue.Empty:
                return
            self.wfile.write((json.dumps(event) + "\n").encode())
            self.wfile.flush()


@pytest.fixture
def api():
    handler = type("Api", (FakeApi,), {"events": queue.Queue(), "pod_watches": [], "auth": []})
    httpd = ThreadingHTTPServer(("127.0.50.8", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield handler, f"http://127.0.50.8:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def write_kubeconfig(path, server):
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sandbox",
        "clusters": [{"name": "sandbox", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(b"PEM").decode()}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "admin"}}],
        "users": [{"name": "admin", "user": {"token": TOKEN}}],
    }))


def test_kubeconfig_current_context(tmp_path):
    write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443/")
    config = KubeConfig.load(str(tmp_path / "kubeconfig"))
    assert config.server == "https://127.0.0.1:6443" and config.token == TOKEN
    assert config.ca_pem == "PEM" and not config.insecure


def test_in_cluster_config_reads_the_service_variables_and_the_mounted_token(tmp_path):
    """As rest.InClusterConfig, with the service account directory where SANDBOX_MOUNTS
    puts it; the token file is read again for each request (the kubelet renews it)."""
    account = tmp_path / "kube-api-access"
    account.mkdir()
    (account / "token").write_text("first\n")
    (account / "ca.crt").write_text("PEM")
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
               "SANDBOX_MOUNTS": json.dumps(
                   {"/var/run/secrets/kubernetes.io/serviceaccount": str(account)})}
    config = KubeConfig.in_cluster(environ)
    assert config.server == "https://10.96.0.1:443" and config.address == ("10.96.0.1", 443)
    assert config.ca_file == str(account / "ca.crt")
    session = config.session()

    def authorization() -> str:
        import requests
        return session.prepare_request(requests.Request("GET", config.server)) \
            .headers["Authorization"]
    assert authorization() == "Bearer first"
    (account / "token").write_text("renewed")
    assert authorization() == "Bearer renewed"
    with pytest.raises(ValueError, match="KUBERNETES_SERVICE_HOST"):
        KubeConfig.in_cluster({"SANDBOX_MOUNTS": environ["SANDBOX_MOUNTS"]})


def test_list_then_watch_with_relist_on_410(api, tmp_path):
    handler, server = api
    write_kubeconfig(tmp_path / "kubeconfig", server)
    config = KubeConfig.load(str(tmp_path / "kubeconfig"))
    seen: queue.Queue = queue.Queue()
    source = KubeSource(config, lambda objs: seen.put(sorted(
        o["metadata"]["name"] for o in objs if o["kind"] == "Pod")), backoff=0.05)
    source.start()
    try:
        assert seen.get(timeout=5) == ["listed"]  # published only once every kind is listed
        assert source.synced and len(KINDS) == 7  # ConfigMap: the root certificate's
        deadline = time.monotonic() + 5
        while len(handler.pod_watches) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert handler.pod_watches[:2] == ["10", "10"]  # 410 → relist → watch again
        handler.events.put({"type": "ADDED", "object": pod("watched", "11")})
        handler.events.put({"type": "DELETED", "object": pod("listed", "12")})
        latest = None
        while latest != ["watched"]:
            latest = seen.get(timeout=5)
        assert set(handler.auth) == {f"Bearer {TOKEN}"}
    finally:
        source.stop()


def test_file_source_rereads_on_change(tmp_path):
    path = tmp_path / "objects.yaml"
    path.write_text("kind: Namespace\nmetadata: {name: a}\n")
    seen: queue.Queue = queue.Queue()
    source = FileSource(str(path), seen.put, poll_interval=0.02)
    source.start()
    try:
        assert [o["metadata"]["name"] for o in seen.get(timeout=2)] == ["a"]
        path.write_text("kind: Namespace\nmetadata: {name: a}\n---\nkind: Namespace\nmetadata: {name: b}\n")
        assert [o["metadata"]["name"] for o in seen.get(timeout=2)] == ["a", "b"]
    finally:
        source.stop()


def test_debouncer_coalesces_bursts_but_bounds_the_delay():
    from sandbox.istiod.controlplane import Debouncer
    applied: queue.Queue = queue.Queue()
    debouncer = Debouncer(0.05, applied.put, max_delay=0.3)
    for i in range(3):
        debouncer.submit([i])
    assert applied.get(timeout=1) == [2]
    assert applied.empty()
    start = time.monotonic()
    while time.monotonic() - start < 0.6 and applied.empty():  # a change every 20 ms
        debouncer.submit(["busy"])
        time.sleep(0.02)
    assert applied.get(timeout=1) == ["busy"]
    assert time.monotonic() - start < 0.5  # pushed within max_delay despite the stream
    debouncer.cancel()
