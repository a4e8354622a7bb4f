"""Regenerate tests/accesslog/data/*.log from a REAL Envoy (1.40, the venv's `envoy`).

    .venv/bin/python -m tests.accesslog.generate_fixtures

One Envoy run per format (Istio's TEXT format, then its JSON encoding), access log on
/dev/stdout and Envoy's own log on stderr, both captured into one file – what
`kubectl logs -c istio-proxy` returns. The TEXT run keeps Envoy's default log format
(`[time][tid][level][logger] ...`), the JSON run uses Istio's (`time\\tlevel\\tenvoy ...`).

Every request is one outcome the parser tests rely on (path → expected outcome in
`CASES`). Only 127.0.80.x addresses are used.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
ENVOY = ROOT / ".venv" / "bin" / "envoy"
DATA = Path(__file__).resolve().parent / "data"
PROXY_IP, APP_IP, DEAD_IP, CLIENT_IP = "127.0.80.1", "127.0.80.2", "127.0.80.3", "127.0.80.9"
HOST = "svc.test"

TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n")
JSON_FORMAT = {
    "start_time": "%START_TIME%", "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "bytes_received": "%BYTES_RECEIVED%", "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%", "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%", "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%", "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%", "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%", "route_name": "%ROUTE_NAME%",
}
ISTIO_LOG_FORMAT = "%Y-%m-%dT%T.%fZ\t%l\tenvoy %n %g:%#\t%v\tthread=%t"

OK = "outbound|80||ok.test.svc.cluster.local"
SLOW = "outbound|80||slow.test.svc.cluster.local"
SICK = "outbound|80||sick.test.svc.cluster.local"
DEAD = "outbound|80||dead.test.svc.cluster.local"
MISSING = "outbound|80|v1|ok.test.svc.cluster.local"  # a subset no DestinationRule defines

# path → (route name, cluster, route extras); the tests know what each produces.
ROUTES = {
    "/ok": ("ok", OK, {}),
    "/app-error": ("app-error", OK, {}),
    "/slow-timeout": ("slow-timeout", SLOW, {"timeout": "0.2s"}),
    "/unhealthy": ("unhealthy", SICK, {}),
    "/refused": ("refused", DEAD, {}),
    "/refused-retry": ("refused-retry", DEAD, {"retry_policy": {
        "retry_on": "connect-failure", "num_retries": 2}}),
    "/no-cluster": ("no-cluster", MISSING, {}),
    "/disconnect": ("disconnect", SLOW, {"timeout": "5s"}),
}


class _App(BaseHTTPRequestHandler):
    """The upstream: `/slow...` and `/disconnect` sleep 1 s, `/app-error` answers 503."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path.startswith("/disconnect"):
            self.server.disconnect_arrived.set()
        if self.path.startswith(("/slow", "/disconnect")):
            time.sleep(1.0)  # the slow upstream the timeout and disconnect outcomes need
        code = 503 if self.path.startswith("/app-error") else 200
        body = b"hello\n"
        try:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the proxy gave up (UT/DC): expected

    do_POST = do_GET

    def log_message(self, *args):
        pass


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _cluster(name: str, address: str, port: int, unhealthy: bool = False) -> dict:
    endpoint = {"endpoint": {"address": {"socket_address": {"address": address,
                                                            "port_value": port}}}}
    if unhealthy:
        endpoint["health_status"] = "UNHEALTHY"
    return {"name": name, "type": "STATIC", "connect_timeout": "0.25s",
            "common_lb_config": {"healthy_panic_threshold": {}},  # Istio: no panic routing
            "upstream_bind_config": {"source_address": {"address": PROXY_IP, "port_value": 0}},
            "load_assignment": {"cluster_name": name,
                                "endpoints": [{"lb_endpoints": [endpoint]}]}}


def bootstrap(admin_port: int, listener_port: int, app_port: int, dead_port: int,
              fmt: str) -> dict:
    routes = [{"name": name, "match": {"path": path},
               "route": {"cluster": cluster, **extras}}
              for path, (name, cluster, extras) in ROUTES.items()]
    if fmt == "text":
        log_format = {"text_format_source": {"inline_string": TEXT_FORMAT}}
    else:
        log_format = {"json_format": JSON_FORMAT}
    access_log = [{"name": "envoy.access_loggers.file", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": "/dev/stdout", "log_format": log_format}}]
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network."
                    "http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "inbound_0.0.0.0_8080", "access_log": access_log,
           "route_config": {"name": "8080", "validate_clusters": False, "virtual_hosts": [
               {"name": f"{HOST}:80", "domains": [HOST], "routes": routes}]},
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    return {
        "admin": {"address": {"socket_address": {"address": PROXY_IP, "port_value": admin_port}}},
        "static_resources": {
            "clusters": [_cluster(OK, APP_IP, app_port), _cluster(SLOW, APP_IP, app_port),
                         _cluster(SICK, APP_IP, app_port, unhealthy=True),
                         _cluster(DEAD, DEAD_IP, dead_port)],
            "listeners": [{"name": "0.0.0.0_8080", "address": {"socket_address": {
                "address": PROXY_IP, "port_value": listener_port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm}]}]}],
        },
    }


def _requests(listener: str, disconnect_arrived: threading.Event) -> int:
    """The traffic: one request per outcome, from CLIENT_IP; how many requests were sent."""
    session = requests.Session()
    session.mount("http://", _SourceAdapter())
    headers = {"Host": HOST, "User-Agent": "fixture-client/1.0 (kubectl-mesh tests)"}
    session.get(listener + "/ok?page=2", timeout=5,
                headers={**headers, "X-Forwarded-For": "203.0.113.7"})
    paths = ("/ok", "/app-error", "/slow-timeout", "/unhealthy", "/refused", "/refused-retry",
             "/no-cluster")
    for path in paths:
        session.get(listener + path, headers=headers, timeout=5)
    session.post(listener + "/ok", data=b"x" * 100, timeout=5,
                 headers={**headers, "User-Agent": 'odd "quoted" agent'})
    session.get(listener + "/ok", headers={**headers, "Host": "nohost.test"}, timeout=5)
    # DC: the client sends a request to a slow upstream and goes away before the answer
    # (once the upstream has it).
    host, port = listener.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), source_address=(CLIENT_IP, 0)) as s:
        s.sendall(f"GET /disconnect HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        if not disconnect_arrived.wait(10):
            raise RuntimeError("the upstream never got /disconnect")
    return 1 + len(paths) + 3  # ?page=2, the paths, the POST, nohost.test, /disconnect


class _SourceAdapter(requests.adapters.HTTPAdapter):
    """Connect from CLIENT_IP so downstream_remote_address shows a 'pod' address."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (CLIENT_IP, 0)
        super().init_poolmanager(*args, **kwargs)


def run(fmt: str, target: Path) -> None:
    app = ThreadingHTTPServer((APP_IP, 0), _App)
    app.daemon_threads = True
    app.disconnect_arrived = threading.Event()
    threading.Thread(target=app.serve_forever, daemon=True).start()
    admin_port, listener_port = _free_port(PROXY_IP), _free_port(PROXY_IP)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bootstrap.json"
        config.write_text(json.dumps(bootstrap(admin_port, listener_port,
                                               app.server_address[1], _free_port(DEAD_IP), fmt)))
        args = [str(ENVOY), "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
                "--file-flush-interval-msec", "100", "--base-id-path", str(Path(tmp) / "id"),
                "-l", "info"]
        if fmt == "json":
            args += ["--log-format", ISTIO_LOG_FORMAT]
        target.write_bytes(b"")
        # Append mode: Envoy reopens /dev/stdout for the access log (its own file offset);
        # O_APPEND on both keeps Envoy's log lines from overwriting access-log lines.
        with open(target, "ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait_ready(proc, f"http://{PROXY_IP}:{admin_port}/ready")
                sent = _requests(f"http://{PROXY_IP}:{listener_port}", app.disconnect_arrived)
                _wait_logged(target, fmt, sent)
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                app.shutdown()
                app.server_close()


def _access_lines(text: str, fmt: str) -> int:
    """How many access-log lines `text` holds (between Envoy's own log lines)."""
    if fmt == "json":
        return sum(line.startswith("{") for line in text.splitlines())
    return sum(line.startswith("[") and '] "' in line[:40] for line in text.splitlines())


def _wait_logged(target: Path, fmt: str, count: int) -> None:
    """Until `count` access-log lines are in `target` (Envoy flushes every 100 ms)."""
    deadline = time.monotonic() + 15
    while _access_lines(target.read_text(), fmt) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"Envoy did not log {count} requests")
        time.sleep(0.05)


def _wait_ready(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("envoy exited during start-up")
        try:
            if requests.get(url, timeout=0.5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError("envoy did not become ready")


def main() -> int:
    DATA.mkdir(exist_ok=True)
    for fmt in ("text", "json"):
        target = DATA / f"envoy-1.40-{fmt}.log"
        run(fmt, target)
        print(f"wrote {target} ({len(target.read_text().splitlines())} lines)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
