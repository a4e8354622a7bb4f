"""exec / attach / port-forward through the API double with REAL clients: kubectl (WebSocket,
SPDY tunnelled in WebSocket, direct SPDY and the fallback to it) and the Python client.

Pod `web` allows WebSocket; pod `legacy` answers WebSocket upgrades with a 400 like a proxy
without WebSocket support, so kubectl has to fall back to SPDY/3.1.
"""

from __future__ import annotations

import concurrent.futures
import gc
import hashlib
import http.server
import json
import os
import pathlib
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from sandbox import kubeconfig
from sandbox.apiserver import auth, kinds, pki
from sandbox.apiserver.server import Api, ApiServer
from sandbox.apiserver.store import Store
from sandbox.streams import StreamError, serve_attach, serve_exec, serve_portforward
from sandbox.streams import spdy, websocket
from sandbox.streams.status import failure

KUBECTL = str(pathlib.Path(sys.executable).parent / "kubectl")
POD_IP = "127.0.70.1"
TOKEN = "streams-test-token"
UPPER_ECHO = "import sys\nfor line in sys.stdin:\n    print(line.upper(), end='', flush=True)\n"

# In the slow matrix (`make test-fast` leaves it out): the protocol matrix (WebSocket, SPDY,
# fallbacks) of exec/attach/port-forward.
pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]


# -- a pod's ports: an HTTP server on 127.0.70.1

class _PodHTTP(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if "sleep=" in self.path:  # a pod slow to answer: silence on the connection first
            time.sleep(float(self.path.partition("sleep=")[2]))
        n = int(self.path.partition("n=")[2] or 0)
        body = (hashlib.sha256(str(n).encode()).digest() * (n // 32 + 1))[:n] if n else b"hello from pod\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Sha256", hashlib.sha256(body).hexdigest())
        self.end_headers()
        self.wfile.write(body)


class Hooks:
    """The pod runtime stand-in: host processes for exec, a socket to the pod HTTP server."""

    def __init__(self, workdir: pathlib.Path):
        self.workdir = workdir
        self.upgrades: list[tuple[str, str, str, str]] = []  # (pod, sub, Upgrade, protocols)
        self.attached: list[subprocess.Popen] = []

    def on_pod_subresource(self, handler, verb, pod, sub, query):
        name = pod["metadata"]["name"]
        self.upgrades.append((name, sub, handler.headers.get("Upgrade", ""),
                              handler.headers.get("Sec-WebSocket-Protocol")
                              or ",".join(handler.headers.get_all("X-Stream-Protocol-Version") or [])))
        allow_ws = name != "legacy"
        containers = [c["name"] for c in pod["spec"]["containers"]]

        def check(container):
            if container and container not in containers:
                raise StreamError(failure(400, "BadRequest",
                                          f"container {container} is not valid for pod {name}"))
            if container == "ghost":  # in the spec, but never started
                raise StreamError(failure(400, "BadRequest", f'container "ghost" in pod "{name}" '
                                          "is waiting to start: ContainerCreating"))

        def spawn(command, container, stdin, tty):
            check(container)
            return subprocess.Popen(command, cwd=self.workdir, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env={"PATH": os.environ["PATH"], "POD_NAME": name})

        def attach(container, stdin, tty):
            check(container)
            proc = subprocess.Popen([sys.executable, "-c", UPPER_ECHO], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.attached.append(proc)
            return proc

        def connect(port):
            return socket.create_connection((POD_IP, port), timeout=5)

        if sub == "exec":
            return serve_exec(handler, query, spawn, allow_websocket=allow_ws)
        if sub == "attach":
            return serve_attach(handler, query, attach, allow_websocket=allow_ws)
        if sub == "portforward":
            return serve_portforward(handler, query, connect, allow_websocket=allow_ws)
        raise AssertionError(sub)


class Cluster:
    def __init__(self, tmp: pathlib.Path):
        ca, cert, key = pki.write_ca_and_server_cert(tmp / "pki")
        auth.write_tokens(tmp / "rbac.json", {TOKEN: {"user": "sandbox-admin"}})
        self.hooks = Hooks(tmp)
        self.api = Api(Store(), auth.Authorizer(tmp / "rbac.json"), hooks=self.hooks)
        self.server = ApiServer(self.api, str(cert), str(key)).start()
        self.kubeconfig = kubeconfig.write(tmp / "kubeconfig",
                                           kubeconfig.render(self.server.url, ca.read_bytes(), TOKEN))
        self.api.create(kinds.by_path("", "v1", "namespaces"), "", {"metadata": {"name": "default"}})
        for name in ("web", "legacy"):
            self.api.create(kinds.by_path("", "v1", "pods"), "default", {
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}, {"name": "ghost"}]},
                "status": {"phase": "Running", "podIP": POD_IP}})
        self.pod_http = http.server.ThreadingHTTPServer((POD_IP, 0), _PodHTTP)
        self.pod_http.daemon_threads = True
        self.http_port = self.pod_http.server_address[1]
        threading.Thread(target=self.pod_http.serve_forever, daemon=True).start()
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                    "KUBECACHEDIR": str(tmp / "kubecache"), "HOME": str(tmp)}
        for var in ("KUBECTL_PORT_FORWARD_WEBSOCKETS", "KUBECTL_REMOTE_COMMAND_WEBSOCKETS"):
            self.env.pop(var, None)

    def kubectl(self, *args, input=None, env=None, timeout=30) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, *args], input=input, capture_output=True, timeout=timeout,
                              env={**self.env, **(env or {})})

    def stop(self) -> None:
        self.pod_http.shutdown()
        self.pod_http.server_close()
        self.server.stop()
        for proc in self.hooks.attached:
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                pipe.close()
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("streams"))
    try:
        yield c
    finally:
        c.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((POD_IP, 0))
        return s.getsockname()[1]


# -- protocol pieces

def test_spdy_dictionary_is_the_spdy3_one():
    import zlib
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 3821447106  # what kubectl's binary carries


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 70000], ids=lambda n: f"{n}B")
def test_unmask_matches_bytewise_xor(size):
    payload, mask = os.urandom(size), os.urandom(4)
    assert websocket.unmask(payload, mask) == bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_header_block_round_trip():
    headers = {"streamtype": "data", "port": "8080", "requestid": "0"}
    assert spdy.decode_headers(spdy.encode_headers(headers)) == headers


# -- kubectl exec

FORCE_SPDY = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
EXEC_PATHS = [("web", {}), ("legacy", {}), ("web", FORCE_SPDY)]
EXEC_IDS = ["websocket-v5", "spdy-fallback", "spdy-forced"]


@pytest.mark.parametrize("pod,env", EXEC_PATHS, ids=EXEC_IDS)
def test_kubectl_exec_streams_and_exit_code(cluster, pod, env):
    r = cluster.kubectl("exec", pod, "-c", "app", "--", "sh", "-c",
                        "echo out-$POD_NAME; echo err >&2; exit 3", env=env)
    assert r.stdout == f"out-{pod}\n".encode()
    assert b"err\n" in r.stderr and b"out" not in r.stderr
    assert r.returncode == 3, r.stderr
    ok = cluster.kubectl("exec", pod, "--", "true", env=env)
    assert (ok.returncode, ok.stdout) == (0, b""), ok.stderr


def test_kubectl_falls_back_to_spdy_when_websocket_is_refused(cluster):
    cluster.hooks.upgrades.clear()
    assert cluster.kubectl("exec", "legacy", "--", "true").returncode == 0
    kinds_seen = [(u[2].lower(), u[3]) for u in cluster.hooks.upgrades if u[0] == "legacy"]
    assert kinds_seen[0] == ("websocket", "v5.channel.k8s.io")
    assert kinds_seen[1][0] == "spdy/3.1" and "v4.channel.k8s.io" in kinds_seen[1][1]


@pytest.mark.parametrize("pod,env", EXEC_PATHS, ids=EXEC_IDS)
def test_kubectl_exec_binary_stdin_round_trip(cluster, pod, env):
    data = os.urandom(3 * 1024 * 1024 + 17)
    start = time.monotonic()
    r = cluster.kubectl("exec", "-i", pod, "--", "sha256sum", input=data, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    r = cluster.kubectl("exec", "-i", pod, "--", "cat", input=data, env=env)
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(data).hexdigest()
    assert time.monotonic() - start < 15


@pytest.mark.parametrize("pod,env", EXEC_PATHS, ids=EXEC_IDS)
def test_kubectl_exec_into_a_container_the_runtime_refuses(cluster, pod, env):
    r = cluster.kubectl("exec", pod, "-c", "ghost", "--", "true", env=env)
    assert r.returncode == 1
    assert f'container "ghost" in pod "{pod}" is waiting to start'.encode() in r.stderr


def test_kubectl_exec_missing_command_reports_an_error(cluster):
    r = cluster.kubectl("exec", "web", "--", "/no/such/binary")
    assert r.returncode != 0
    assert b"/no/such/binary" in r.stderr


def test_kubectl_attach_sends_stdin_and_ends_at_exit(cluster):
    r = cluster.kubectl("attach", "-i", "web", "-c", "app", input=b"hello\nworld\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b"HELLO\nWORLD\n")


@pytest.mark.parametrize("env", [{}, FORCE_SPDY], ids=["websocket-v5", "spdy-forced"])
def test_kubectl_exec_with_a_terminal(cluster, env):
    """-it: one merged output stream, resize messages (channel 4 / a resize stream) accepted."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([KUBECTL, "exec", "-it", "web", "--", "sh", "-c", "read x; echo got-$x; exit 4"],
                            stdin=slave, stdout=slave, stderr=slave, env={**cluster.env, **env})
    os.close(slave)
    try:
        os.write(master, b"abc\n")  # raw mode: no line discipline turns CR into LF for us
        out = b""
        while b"exit code 4" not in out:
            ready, _, _ = select.select([master], [], [], 10)
            assert ready, out
            out += os.read(master, 4096)
        assert proc.wait(10) == 4
        assert b"got-abc\n" in out
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


# -- kubectl port-forward

class PortForward:
    def __init__(self, cluster, pod, remote_port, env=None):
        self.proc = subprocess.Popen([KUBECTL, "port-forward", pod, f":{remote_port}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**cluster.env, **(env or {})})
        line = self.proc.stdout.readline().decode()
        m = re.search(r"127\.0\.0\.1:(\d+) ->", line)
        assert m, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.url = f"http://127.0.0.1:{m.group(1)}"

    def stop(self) -> bytes:
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        return err


FORCE_SPDY_PF = {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
PF_PATHS = [("web", {}), ("legacy", {}), ("web", FORCE_SPDY_PF)]
PF_IDS = ["spdy-in-websocket", "spdy-fallback", "spdy-forced"]


@pytest.mark.parametrize("pod,env", PF_PATHS, ids=PF_IDS)
def test_kubectl_port_forward_parallel_connections(cluster, pod, env):
    cluster.hooks.upgrades.clear()
    pf = PortForward(cluster, pod, cluster.http_port, env)
    try:
        def fetch(n):
            with requests.get(f"{pf.url}/?n={n}", timeout=20) as r:
                return r.status_code, hashlib.sha256(r.content).hexdigest(), r.headers["X-Sha256"]

        sizes = [0, 10, 200_000, 2_000_000] * 3
        with concurrent.futures.ThreadPoolExecutor(len(sizes)) as pool:
            for code, got, want in pool.map(fetch, sizes):
                assert code == 200 and got == want
        assert requests.get(pf.url, timeout=10).text == "hello from pod\n"
        # the pod closes: kubectl closes our end only once the error stream got FIN
        with socket.create_connection(("127.0.0.1", int(pf.url.rsplit(":", 1)[1])), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert reply.endswith(b"\r\n\r\nhello from pod\n")
        assert pf.proc.poll() is None
    finally:
        err = pf.stop()
    assert b"error" not in err.lower()
    protocols = [u[3] for u in cluster.hooks.upgrades if u[1] == "portforward"]
    if pod == "web" and not env:
        assert protocols == ["SPDY/3.1+portforward.k8s.io"]
    else:
        assert protocols[-1] == "portforward.k8s.io"


def test_kubectl_port_forward_keeps_a_connection_the_pod_is_slow_to_answer(cluster):
    """The pod says nothing for 6 s (longer than the dial's 5 s timeout): the forwarded
    connection stays, as a kubelet keeps it, and the answer arrives."""
    pf = PortForward(cluster, "web", cluster.http_port)
    try:
        answer = requests.get(f"{pf.url}/?sleep=6", timeout=30)
        assert (answer.status_code, answer.text) == (200, "hello from pod\n")
    finally:
        pf.stop()


@pytest.mark.parametrize("pod,env", PF_PATHS, ids=PF_IDS)
def test_kubectl_port_forward_refused_port(cluster, pod, env):
    pf = PortForward(cluster, pod, free_port(), env)
    try:
        with pytest.raises(requests.ConnectionError):
            requests.get(pf.url, timeout=10)
        pf.proc.wait(timeout=10)  # kubectl ≥ 1.3x drops the forward on an error-stream message
    finally:
        err = pf.stop()
    assert b"connection refused" in err.lower(), err


# -- the Python client

@pytest.fixture(scope="module")
def core(cluster):
    import kubernetes
    api_client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    yield kubernetes.client.CoreV1Api(api_client)
    api_client.close()


def test_python_client_exec(core):
    from kubernetes.stream import stream
    out = stream(core.connect_get_namespaced_pod_exec, "web", "default",
                 command=["sh", "-c", "echo hi; echo oops >&2"], stderr=True, stdin=False,
                 stdout=True, tty=False)
    assert "hi\n" in out and "oops\n" in out
    ws = stream(core.connect_get_namespaced_pod_exec, "web", "default", command=["sh", "-c", "cat; exit 5"],
                stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    ws.write_stdin("ping\n")
    ws.close_channel(0)  # v5: stdin EOF
    ws.run_forever(timeout=10)
    assert ws.returncode == 5
    assert ws.read_stdout() == "ping\n"


def test_python_client_sees_the_refusal_status(core):
    from kubernetes.client.rest import ApiException
    from kubernetes.stream import stream
    with pytest.raises(ApiException, match="is waiting to start"):
        stream(core.connect_get_namespaced_pod_exec, "web", "default", command=["true"],
               container="ghost", stderr=True, stdin=False, stdout=True, tty=False)


def test_python_client_gets_a_clean_error_without_websocket(core):
    from kubernetes.client.rest import ApiException
    from kubernetes.stream import stream
    with pytest.raises(ApiException, match="400"):
        stream(core.connect_get_namespaced_pod_exec, "legacy", "default", command=["true"],
               stderr=True, stdin=False, stdout=True, tty=False)
    from kubernetes.stream import portforward
    with pytest.raises(ApiException, match="400"):
        portforward(core.connect_get_namespaced_pod_portforward, "legacy", "default", ports="80")


def test_python_client_portforward(cluster, core):
    from kubernetes.stream import portforward
    refused = free_port()
    pf = portforward(core.connect_get_namespaced_pod_portforward, "web", "default",
                     ports=f"{cluster.http_port},{refused}")
    try:
        sock = pf.socket(cluster.http_port)
        sock.setblocking(True)
        sock.sendall(b"GET /?n=300000 HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n")
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.")
        want = re.search(rb"X-Sha256: (\w+)", head).group(1).decode()
        assert hashlib.sha256(body).hexdigest() == want
        deadline = time.monotonic() + 5
        while pf.error(refused) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "refused" in pf.error(refused).lower()
        assert pf.error(cluster.http_port) is None
    finally:
        pf.close()


def _raw_websocket(cluster, path, protocols):
    import ssl
    import websocket as wsclient
    ws = wsclient.WebSocket(sslopt={"cert_reqs": ssl.CERT_REQUIRED,
                                    "ca_certs": str(cluster.kubeconfig.parent / "pki" / "ca.crt")})
    ws.connect(cluster.server.url.replace("https", "wss") + path, subprotocols=protocols,
               header=[f"Authorization: Bearer {TOKEN}"])
    return ws


def test_v4_websocket_fragmented_stdin_ping_and_close(cluster):
    from websocket import ABNF
    n = 200_000
    ws = _raw_websocket(cluster, f"/api/v1/namespaces/default/pods/web/exec?command=head&command=-c"
                                 f"&command={n}&stdin=1&stdout=1&stderr=1", ["v4.channel.k8s.io"])
    assert ws.subprotocol == "v4.channel.k8s.io"
    data = os.urandom(n)
    ws.send_frame(ABNF.create_frame(b"\x00" + data[:1000], ABNF.OPCODE_BINARY, fin=0))
    ws.ping(b"are-you-there")  # a control frame between fragments
    ws.send_frame(ABNF.create_frame(data[1000:150_000], ABNF.OPCODE_CONT, fin=0))
    ws.send_frame(ABNF.create_frame(data[150_000:], ABNF.OPCODE_CONT, fin=1))
    out, statuses, pongs = [], [], []
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == ABNF.OPCODE_CLOSE:
            break
        if opcode == ABNF.OPCODE_PONG:
            pongs.append(frame.data)
        elif frame.data[0] == 1:
            out.append(frame.data[1:])
        elif frame.data[0] == 3:
            statuses.append(json.loads(frame.data[1:]))
    ws.close()
    assert b"".join(out) == data
    assert pongs == [b"are-you-there"]
    assert statuses == [{"metadata": {}, "status": "Success"}]


def _gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.05)
    return False


def test_exec_process_outlives_its_client_but_sees_stdin_close(cluster):
    """A real kubelet does not kill what it exec'd when the client goes away
    (kubernetes/kubernetes#89031): the process keeps running, and only notices through its
    stdin (EOF). Clients that must not leave processes behind have to act on that, so the
    double must not be kinder than a cluster."""
    ws = _raw_websocket(cluster, "/api/v1/namespaces/default/pods/web/exec?command=sh&command=-c"
                                 "&command=echo+$$;exec+sleep+37&stdout=1", ["v5.channel.k8s.io"])
    pid = int(ws.recv()[1:])
    ws.sock.close()  # no close frame: the client just vanishes
    try:
        # nothing announces that the server has dropped the vanished client's stream: a
        # second in which killing the process would show
        assert not _gone(pid, 1.0), "the exec'd process was killed when its client left"
    finally:
        _kill_tree(pid)
    assert _gone(pid)
    # One that reads stdin sees EOF when the client vanishes (here: SPDY, kubectl killed).
    kubectl = subprocess.Popen([KUBECTL, "exec", "-i", "web", "--", "sh", "-c",
                                "echo $$; cat >/dev/null; sleep 39"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               env={**cluster.env, **FORCE_SPDY})
    pid = int(kubectl.stdout.readline())
    kubectl.kill()
    kubectl.communicate()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "sleep" not in _cmdline(pid):
        time.sleep(0.05)
    try:
        assert "sleep" in _cmdline(pid), "stdin did not reach EOF when the client left"
    finally:
        _kill_tree(pid)


def _kill_tree(pid: int) -> None:
    """SIGKILL `pid` and its children (sh runs sleep as a child holding the output pipe)."""
    try:
        children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for target in [pid, *map(int, children)]:
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _cmdline(pid: int) -> str:
    """The command line of `pid`'s youngest child, or of `pid` (sh runs sleep as a child)."""
    try:
        children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        target = children[-1] if children else pid
        return pathlib.Path(f"/proc/{target}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# -- nothing left behind

STREAM_THREADS = {"stdout-pump", "stderr-pump", "ws-exec-reader", "spdy-exec-session",
                  "pf-up", "pf-down", "pf-ws-reader", "pf-ws-down", "spdy-stdin"}


def test_connections_leave_no_threads_or_descriptors(cluster):
    def settle():
        cluster.kubectl("exec", "web", "--", "true")
        time.sleep(0.5)  # the poll interval of the loop below
        # earlier tests' client WebSockets sit in reference cycles; when the collector frees
        # them mid-test the count drops and the comparison fails by chance, so collect now
        gc.collect()
        return len(os.listdir("/proc/self/fd")), threading.active_count()

    # The baseline: the counts once two readings in a row agree (earlier requests' threads
    # finished). Not "no serving thread at all": in a full run other modules' servers share
    # this process and may still hold a connection of theirs.
    deadline = time.monotonic() + 30
    baseline, current = None, settle()
    while current != baseline and time.monotonic() < deadline:
        baseline, current = current, settle()
    fds, threads = current
    for env in ({}, FORCE_SPDY):
        cluster.kubectl("exec", "-i", "web", "--", "cat", input=b"x" * 100000, env=env)
    for env in ({}, FORCE_SPDY_PF):
        pf = PortForward(cluster, "web", cluster.http_port, env)
        with requests.Session() as session:  # keep-alive: the connection is open when kubectl stops
            assert session.get(pf.url, timeout=10).status_code == 200
            pf.stop()
    deadline = time.monotonic() + 10
    while settle() != (fds, threads) and time.monotonic() < deadline:
        pass
    assert settle() == (fds, threads)
    names = {t.name for t in threading.enumerate()}
    assert not names & STREAM_THREADS
