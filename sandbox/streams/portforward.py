"""port-forward: TCP connections to a pod's ports over SPDY streams or WebSocket channels.

SPDY/3.1 (`portforward.k8s.io`), directly upgraded or tunnelled in binary WebSocket messages
(`SPDY/3.1+portforward.k8s.io`, kubectl ≥ 1.31): every client connection opens an `error` and
a `data` stream sharing a `requestid` and a `port` header. Bytes are copied both ways; the
error stream stays empty unless connecting fails (then the kubelet's message), and gets FIN
when the connection ends – kubectl waits for that FIN.

WebSocket `v4.channel.k8s.io` (the Python client, `?ports=a,b`): one connection per port,
channels 2i (data) and 2i+1 (error), each starting with channel byte + port (uint16 LE).
"""

from __future__ import annotations

import socket
import struct
import threading

from ..apiserver.latency import Latency
from . import spdy, upgrade
from .status import StreamError, bad_request
from .websocket import ByteStream, ChannelFramer, WebSocket

SPDY_PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
V4 = "v4.channel.k8s.io"
CHUNK = 64 * 1024
CLIENT_CLOSE_WAIT = 5.0


def serve_portforward(handler, query: dict[str, list[str]], connect, *,
                      allow_websocket: bool = True, delay_line=None) -> None:
    """Forward client connections to `connect(port) -> socket` (OSError when refused).

    `delay_line` (`apiserver.latency.Latency.delay_line`) delays client→pod messages on
    WebSocket channels by the modelled network round trip; none by default."""
    pod = handler.path.split("?")[0].rstrip("/").split("/")[-2]
    try:
        up = upgrade.negotiate(handler, [TUNNEL_PROTOCOL, V4], [SPDY_PROTOCOL],
                               allow_websocket=allow_websocket)
        ports = _query_ports(query) if up.protocol == V4 else []
    except StreamError as e:
        return upgrade.reject(handler, e)
    try:
        upgrade.accept(handler, up)
        if up.protocol == V4:
            _over_channels(handler, ports, connect, pod,
                           delay_line or Latency(None).delay_line)
        else:
            ws = WebSocket(handler.rfile, handler.connection) if up.protocol == TUNNEL_PROTOCOL else None
            _over_spdy(handler, ByteStream(ws) if ws else upgrade.RawTransport(handler), connect, pod)
    except OSError:
        pass
    finally:
        upgrade.hang_up(handler)


def _query_ports(query: dict[str, list[str]]) -> list[int]:
    ports = []
    for value in (query.get("ports") or []) + (query.get("port") or []):
        for item in value.split(","):
            try:
                port = int(item)
            except ValueError:
                raise bad_request(f'unable to parse "{item}" as a port: invalid syntax') from None
            if not 0 < port < 65536:
                raise bad_request(f"port {port} must be > 0 and < 65536")
            ports.append(port)
    if not ports:
        raise bad_request('query parameter "port" is required')
    return ports


def _dial(connect, port: int) -> socket.socket:
    """`connect(port)` with its timeout for the dial only: the forwarded connection then has
    none, as containerd copies it (internal/cri/server/sandbox_portforward_linux.go
    `portForward`: a dial with a timeout, then io.Copy both ways without deadlines); the
    kubelet's only limit is its streaming idle timeout (4 h by default). A pod that is slow
    to answer (a paused or busy Envoy) keeps its forwarded connection."""
    sock = connect(port)
    sock.settimeout(None)
    return sock


def forward_error(port: int, pod: str, err: OSError) -> str:
    """The kubelet's message for a failed connection (plain text, as kubectl prints it)."""
    return (f"error forwarding port {port} to pod {pod}, uid : failed to connect to "
            f"localhost:{port} inside namespace \"{pod}\", IPv4: {err.strerror or err}")


def _shutdown(sock: socket.socket) -> None:
    """Wake the threads blocked on `sock`; only its owner closes it, after they ended (closing
    under a thread about to recv() with a timeout leaves it polling fd -1 until the timeout)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# -- SPDY

class _Forward:
    """One client connection: an (error, data) stream pair and the socket to the pod."""

    def __init__(self, error: spdy.Stream, data: spdy.Stream, connect, pod: str):
        self.error, self.data, self.connect, self.pod = error, data, connect, pod
        self._done = threading.Lock()
        self._finished = False
        self.sock: socket.socket | None = None

    def run(self) -> None:
        try:
            port = int(self.data.headers.get("port", ""))
            sock = _dial(self.connect, port)
        except (ValueError, OSError) as e:
            message = (forward_error(port, self.pod, e) if isinstance(e, OSError)
                       else f'unable to parse "{self.data.headers.get("port")}" as a port')
            try:
                self.error.write(message.encode())
            except OSError:
                pass
            return self.finish()
        with self._done:
            if self._finished:  # the client left while we were connecting
                return sock.close()
            self.sock = sock
        upstream = threading.Thread(target=self._client_to_pod, name="pf-up", daemon=True)
        upstream.start()
        try:
            while data := sock.recv(CHUNK):
                self.data.write(data)
        except OSError:
            pass
        self.finish()
        upstream.join()
        sock.close()

    def _client_to_pod(self) -> None:
        try:
            while data := self.data.read():
                self.sock.sendall(data)
        except OSError:
            pass
        # like containerd: one direction ending ends the forward (no TCP half-close)
        self.finish()

    def finish(self) -> None:
        with self._done:
            if self._finished:
                return
            self._finished = True  # from here on self.sock does not change
        if self.sock is not None:
            _shutdown(self.sock)
        self.data.close()
        self.error.close()
        self.data._feed(None)  # wake _client_to_pod if it still waits for the client


def _over_spdy(handler, transport, connect, pod: str) -> None:
    pending: dict[str, spdy.Stream] = {}  # requestid → error stream waiting for its data stream
    forwards: list[_Forward] = []

    def on_stream(stream: spdy.Stream) -> None:
        kind, request = stream.headers.get("streamtype"), stream.headers.get("requestid", "")
        if kind == "error":
            pending[request] = stream
        elif kind == "data" and request in pending:
            fwd = _Forward(pending.pop(request), stream, connect, pod)
            forwards.append(fwd)
            threading.Thread(target=fwd.run, name="pf-down", daemon=True).start()
        else:
            stream.reset()

    session = spdy.Session(transport, on_stream)
    try:
        session.serve()  # until the client closes the session
    finally:
        for fwd in forwards:
            fwd.finish()
        session.close()


# -- WebSocket channels (Python client)

def _over_channels(handler, ports: list[int], connect, pod: str, delay_line) -> None:
    ws = WebSocket(handler.rfile, handler.connection)
    socks: dict[int, socket.socket] = {}
    pumps = []
    for i, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        ws.send(bytes([2 * i]) + prefix)
        ws.send(bytes([2 * i + 1]) + prefix)
        try:
            socks[2 * i] = _dial(connect, port)
        except OSError as e:
            ws.send(bytes([2 * i + 1]) + forward_error(port, pod, e).encode())
            continue
        pump = threading.Thread(target=_pod_to_channel, args=(socks[2 * i], ws, 2 * i),
                                name="pf-ws-down", daemon=True)
        pump.start()
        pumps.append(pump)

    def to_pod(msg: bytes) -> None:
        sock = socks.get(msg[0]) if msg else None
        if sock is not None and len(msg) > 1:
            try:
                sock.sendall(msg[1:])
            except OSError:
                pass

    def read_client():
        send = delay_line(to_pod)
        while (msg := ws.recv()) is not None:
            send(msg)
        send(None)
        for sock in socks.values():
            _shutdown(sock)

    reader = threading.Thread(target=read_client, name="pf-ws-reader", daemon=True)
    reader.start()
    for pump in pumps:  # every pod connection ended, or the client left (reader closed them)
        pump.join()
    ws.close()
    reader.join(CLIENT_CLOSE_WAIT)
    upgrade.hang_up(handler)
    reader.join(CLIENT_CLOSE_WAIT)
    for sock in socks.values():
        sock.close()


def _pod_to_channel(sock: socket.socket, ws: WebSocket, channel: int) -> None:
    # recv straight into the frame buffer: `ws.send(prefix + data)` copied every byte twice
    framer = ChannelFramer(ws, channel, CHUNK)
    try:
        while framer.pump_socket(sock):
            pass
    except OSError:
        pass
